// User destinations.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync } from '../lib/harness.mjs';

const run = useBroker();

describe('user destinations', () => {
  it('/user/alice/queue/inbox reaches alice\'s /user/queue/inbox subscription', run(async (s) => {
    const alice = await s.stomp({ connectHeaders: { login: 'alice', passcode: 'anything' } }, 'alice');
    const { messages } = await subscribeSync(s, alice, '/user/queue/inbox');
    const bob = await s.stomp({ connectHeaders: { login: 'bob', passcode: 'whatever' } }, 'bob');
    const bobSub = await subscribeSync(s, bob, '/user/queue/inbox');
    await publishSync(s, bob, { destination: '/user/alice/queue/inbox', body: 'hi alice' });
    const [m] = await messages.count(1);
    assert.equal(m.body, 'hi alice');
    assert.equal(m.headers.destination, '/user/queue/inbox');
    // bob's own inbox got nothing: a message to bob is the first thing he sees
    await publishSync(s, alice, { destination: '/user/bob/queue/inbox', body: 'hi bob' });
    const [b] = await bobSub.messages.count(1);
    assert.equal(b.body, 'hi bob');
    assert.equal(b.headers.destination, '/user/queue/inbox');
  }));

  it('a message to a user reaches every session of that user', run(async (s) => {
    const a1 = await s.stomp({ connectHeaders: { login: 'carol', passcode: 'x' } }, 'carol1');
    const a2 = await s.stomp({ connectHeaders: { login: 'carol', passcode: 'x' } }, 'carol2');
    const s1 = await subscribeSync(s, a1, '/user/queue/inbox');
    const s2 = await subscribeSync(s, a2, '/user/queue/inbox');
    const other = await s.stomp({ connectHeaders: { login: 'dave', passcode: 'x' } }, 'dave');
    await publishSync(s, other, { destination: '/user/carol/queue/inbox', body: 'to all of carol' });
    const [m1] = await s1.messages.count(1);
    const [m2] = await s2.messages.count(1);
    assert.equal(m1.body, 'to all of carol');
    assert.equal(m2.body, 'to all of carol');
    assert.equal(m1.headers.destination, '/user/queue/inbox');
  }));
});
