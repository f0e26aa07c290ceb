// Package hook asks the application's HTTP backend whether a client may
// connect, subscribe and publish: POST URL/connect, URL/subscribe and
// URL/publish with JSON (the contract's "Backend hooks"). It implements
// session.Hook.
//
// Concurrency: Connect and Allow return at once; each call runs on a
// goroutine of its own, which first takes one of Config.Concurrency slots
// (a semaphore), so at most that many requests are in flight and the rest
// wait there, never on the caller. A call's deadline (Config.Timeout)
// counts from the moment it was made, the wait for a slot included; on
// any failure or timeout the answer is a refusal (fail closed). The HTTP
// client keeps connections alive, at most Concurrency of them. Every
// answer is counted in stompbus_hook_requests_total{hook,result} and timed
// in stompbus_hook_duration_seconds{hook}. A Client is safe for concurrent
// use.
package hook
