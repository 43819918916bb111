import nodemailer from 'nodemailer';
import type { EmailSettings } from '../../shared/types';
import { emailList } from '../../shared/settings-rules';

/** Sends one plain-text email over SMTP (nodemailer): thin, no rules. A new connection each time; alerts are rare. */
export async function sendMail(settings: EmailSettings, message: { subject: string; text: string }, timeoutMs = 15_000): Promise<void> {
  const transport = nodemailer.createTransport({
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    auth: settings.username ? { user: settings.username, pass: settings.password } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
  try {
    await transport.sendMail({ from: settings.from, to: emailList(settings.to), subject: message.subject, text: message.text });
  } finally {
    transport.close();
  }
}
