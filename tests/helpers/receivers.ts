import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  body: string;
  user: string | null;
}

/** A real SMTP server (smtp-server) on a random port: plain SMTP, optional login, keeps what arrives. */
export async function startSmtp(options: { user?: string; password?: string } = {}): Promise<{ port: number; mails: ReceivedMail[]; close(): Promise<void> }> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    authOptional: !options.user,
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === options.user && auth.password === options.password) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const [head, ...rest] = raw.split(/\r?\n\r?\n/);
        const subject = /^Subject: (.*(?:\r?\n[ \t].*)*)/im.exec(head)?.[1].replace(/\r?\n[ \t]/g, ' ') ?? '';
        const body = rest.join('\n\n').replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), subject, body, user: (session.user as string) ?? null });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export interface ReceivedHook {
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

/** A local node:http webhook receiver: answers `status` (200 by default) and keeps every JSON body. */
export async function startWebhookReceiver(): Promise<{ url: string; hooks: ReceivedHook[]; status: number; server: Server; close(): Promise<void> }> {
  const hooks: ReceivedHook[] = [];
  const receiver = {
    url: '',
    hooks,
    status: 200,
    server: null as unknown as Server,
    close: () => new Promise<void>((resolve) => receiver.server.close(() => resolve())),
  };
  receiver.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        hooks.push({ headers: req.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      } catch {
        hooks.push({ headers: req.headers, json: { unparsable: Buffer.concat(chunks).toString('utf8') } });
      }
      res.writeHead(receiver.status, { 'content-type': 'text/plain' }).end(receiver.status === 200 ? 'ok' : 'refused');
    });
  });
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook/secret-token`;
  return receiver;
}
