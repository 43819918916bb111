/** What a stream's owner writes: events (JSON) and comments (not events: they keep the connection open). */
export interface EventSink {
  send(value: unknown): void;
  comment(text: string): void;
  /** When anything was last written (ms since the epoch). */
  readonly lastWrite: number;
}

export interface EventStreamOptions {
  /** Sends what is current first (a late subscriber misses nothing), then subscribes to changes; returns the unsubscribe. */
  open(sink: EventSink): (() => void) | Promise<() => void>;
  heartbeatMs: number;
  /** Runs every heartbeat; by default a comment, so a proxy's idle timeout never sees more than heartbeatMs between bytes. */
  heartbeat?(sink: EventSink): void;
  /** The request's: the subscription ends when the client goes. */
  signal?: AbortSignal;
}

/**
 * Server-Sent Events, the one way every stream of the app is written: a comment at once (through
 * adapter-node the headers wait for the first chunk), then what `open` sends, and a heartbeat.
 * The subscription and the timer end with the connection, however it ends.
 */
export function eventStreamResponse(options: EventStreamOptions): Response {
  const encoder = new TextEncoder();
  let closed = false;
  let unsubscribe = () => {};
  let timer: ReturnType<typeof setInterval> | undefined;
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    options.signal?.removeEventListener('abort', close);
    unsubscribe();
    try {
      controller?.close();
    } catch {
      // Already closed or cancelled.
    }
  };
  let lastWrite = 0;
  const write = (text: string) => {
    if (closed) return;
    try {
      controller!.enqueue(encoder.encode(text));
      lastWrite = Date.now();
    } catch {
      close();
    }
  };
  const sink: EventSink = {
    send: (value) => write(`data: ${JSON.stringify(value)}\n\n`),
    comment: (text) => write(`: ${text}\n\n`),
    get lastWrite() {
      return lastWrite;
    },
  };
  const heartbeat = options.heartbeat ?? ((sink: EventSink) => sink.comment('ping'));
  const stream = new ReadableStream<Uint8Array>({
    async start(streamController) {
      controller = streamController;
      sink.comment('connected');
      if (options.signal?.aborted) return close();
      options.signal?.addEventListener('abort', close);
      const stop = await options.open(sink);
      // The client may have gone while `open` was subscribing.
      if (closed) return stop();
      unsubscribe = stop;
      timer = setInterval(() => heartbeat(sink), options.heartbeatMs);
    },
    // The client went away: adapter-node cancels the stream.
    cancel() {
      close();
    },
  });
  return new Response(stream, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
  });
}
