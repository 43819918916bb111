import { describe, expect, it, vi } from 'vitest';
import { eventStreamResponse, type EventSink } from './event-stream';

/** Reads the body's messages (separated by a blank line) until `count` have arrived. */
async function readMessages(reader: ReadableStreamDefaultReader<Uint8Array>, count: number): Promise<string[]> {
  const decoder = new TextDecoder();
  let text = '';
  while (text.split('\n\n').length - 1 < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text.split('\n\n').slice(0, count);
}

describe('eventStreamResponse', () => {
  it('writes a comment at once, then what open sends, then each change; cancel unsubscribes', async () => {
    let sink: EventSink | undefined;
    const unsubscribe = vi.fn();
    const response = eventStreamResponse({
      heartbeatMs: 60_000,
      open(s) {
        sink = s;
        s.send({ state: 'current' });
        return unsubscribe;
      },
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    expect(await readMessages(reader, 2)).toEqual([': connected', 'data: {"state":"current"}']);
    sink!.send({ state: 'next' });
    expect(await readMessages(reader, 1)).toEqual(['data: {"state":"next"}']);
    await reader.cancel();
    expect(unsubscribe).toHaveBeenCalledTimes(1);
    // Writes after the end are dropped, not thrown.
    expect(() => sink!.send({ state: 'late' })).not.toThrow();
  });

  it('ends the subscription and the body when the request is aborted', async () => {
    const controller = new AbortController();
    const unsubscribe = vi.fn();
    const response = eventStreamResponse({ signal: controller.signal, heartbeatMs: 60_000, open: () => unsubscribe });
    const reader = response.body!.getReader();
    expect(await readMessages(reader, 1)).toEqual([': connected']);
    controller.abort();
    expect(unsubscribe).toHaveBeenCalledTimes(1);
    expect((await reader.read()).done).toBe(true);
  });

  it('unsubscribes at once when the client went while open was still subscribing', async () => {
    const controller = new AbortController();
    const unsubscribe = vi.fn();
    let subscribed!: () => void;
    const response = eventStreamResponse({
      signal: controller.signal,
      heartbeatMs: 60_000,
      open: () => new Promise<() => void>((resolve) => (subscribed = () => resolve(unsubscribe))),
    });
    const reader = response.body!.getReader();
    await readMessages(reader, 1);
    controller.abort();
    expect(unsubscribe).not.toHaveBeenCalled();
    subscribed();
    await vi.waitFor(() => expect(unsubscribe).toHaveBeenCalledTimes(1));
  });

  it('sends a heartbeat comment when nothing else was written, or what heartbeat chooses', async () => {
    const quiet = eventStreamResponse({ heartbeatMs: 150, open: () => () => {} });
    const quietReader = quiet.body!.getReader();
    expect(await readMessages(quietReader, 2)).toEqual([': connected', ': ping']);
    await quietReader.cancel();

    let beats = 0;
    const chosen = eventStreamResponse({ heartbeatMs: 50, open: () => () => {}, heartbeat: (sink) => sink.send({ beat: ++beats }) });
    const chosenReader = chosen.body!.getReader();
    expect(await readMessages(chosenReader, 3)).toEqual([': connected', 'data: {"beat":1}', 'data: {"beat":2}']);
    await chosenReader.cancel();
  });
});
