package queues

// DefaultMaxDepth is the default bound of one queue's waiting messages,
// for every Queues implementation.
const DefaultMaxDepth = 10000
