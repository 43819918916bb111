import { hostname } from 'node:os';
import { join } from 'node:path';
import { validateEmail, validateWebhook } from '../../shared/settings-rules';
import type { EmailSettings, NotificationSettings, WebhookSettings } from '../../shared/types';
import { sendMail } from '../repositories/mail.repository';
import type { StorageRepository } from '../repositories/storage.repository';
import { postJson } from '../repositories/webhook.repository';
import type { SystemConfigService } from './system-config.service';

/** What an alert is about. Verification and drill failures are raised by those features. */
export type AlertType = 'backup-failed' | 'verification-failed' | 'drill-failed' | 'offsite-failed' | 'backup-stale' | 'restore-finished' | 'restore-failed' | 'test';

export interface AlertEvent {
  type: AlertType;
  /** One line, e.g. "Backup failed". */
  title: string;
  /** Plain words: what happened and what to do. */
  message: string;
  filename?: string | null;
  error?: string | null;
}

export type Channel = 'email' | 'webhook';

export interface Delivery {
  channel: Channel;
  type: AlertType;
  title: string;
  ok: boolean;
  at: string;
  attempts: number;
  error: string | null;
}

export interface NotificationStatus {
  /** The last delivery per channel: a failed one is shown in the app. */
  channels: Partial<Record<Channel, Delivery>>;
  recent: Delivery[];
}

export interface ChannelTestResult {
  channel: Channel;
  ok: boolean;
  message: string;
}

export interface NotificationServiceDeps {
  systemConfig: SystemConfigService;
  storage: StorageRepository;
  stateDir: string;
  log: (line: string) => void;
  logError: (line: string) => void;
}

const TITLES: Record<AlertType, string> = {
  'backup-failed': 'Backup failed',
  'verification-failed': 'Backup verification failed',
  'drill-failed': 'Restore drill failed',
  'offsite-failed': 'Off-site copy failed',
  'backup-stale': 'No recent backup',
  'restore-finished': 'Restore finished',
  'restore-failed': 'Restore failed',
  test: 'Test alert',
};

export function alertTitle(type: AlertType): string {
  return TITLES[type];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Where a URL points, without its path or query (which may hold a token): for logs and messages. */
function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the webhook';
  }
}

/**
 * Alerts by email (SMTP) and webhook (JSON POST with a readable "text"). notify() never
 * throws and is never awaited by the job that raised the alert: each channel is tried a few
 * times in the background and its last result is kept (and shown in Settings).
 */
export class NotificationService {
  private state: NotificationStatus | null = null;
  private readonly pending = new Set<Promise<void>>();
  private writes: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Attempts per channel and the first wait between them (doubled each time); tests shorten the wait. */
  retry = { attempts: 3, delayMs: 10_000 };
  readonly server = hostname();

  constructor(private readonly deps: NotificationServiceDeps) {}

  private get file(): string {
    return join(this.deps.stateDir, 'notifications.json');
  }

  async status(): Promise<NotificationStatus> {
    this.state ??= (await this.deps.storage.readJson<NotificationStatus>(this.file).catch(() => null)) ?? { channels: {}, recent: [] };
    return this.state;
  }

  /** Raises an alert on every enabled channel, in the background. */
  notify(event: AlertEvent): void {
    if (this.stopped) return;
    const delivery = this.deliver(event).catch((error) => this.deps.logError(`Alert "${event.title}" could not be sent: ${(error as Error).message}`));
    this.pending.add(delivery);
    void delivery.finally(() => this.pending.delete(delivery));
  }

  /** Settles when every alert raised so far has been delivered or given up (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
    await this.writes;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private async deliver(event: AlertEvent): Promise<void> {
    const { notifications } = await this.deps.systemConfig.get();
    const channels: Array<[Channel, () => Promise<void>]> = [];
    if (notifications.email.enabled) channels.push(['email', () => this.sendEmail(notifications.email, event)]);
    if (notifications.webhook.enabled) channels.push(['webhook', () => this.sendWebhook(notifications.webhook, event)]);
    await Promise.all(channels.map(([channel, send]) => this.withRetries(channel, event, send)));
  }

  private async withRetries(channel: Channel, event: AlertEvent, send: () => Promise<void>): Promise<void> {
    const { attempts, delayMs } = this.retry;
    let error = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        await send();
        await this.record({ channel, type: event.type, title: event.title, ok: true, at: new Date().toISOString(), attempts: attempt, error: null });
        return;
      } catch (caught) {
        error = (caught as Error).message;
        this.deps.logError(`Alert "${event.title}" by ${channel} failed (attempt ${attempt} of ${attempts}): ${error}`);
        if (attempt < attempts && !this.stopped) await sleep(delayMs * 2 ** (attempt - 1));
        else if (this.stopped) break;
      }
    }
    await this.record({ channel, type: event.type, title: event.title, ok: false, at: new Date().toISOString(), attempts, error });
  }

  private async record(delivery: Delivery): Promise<void> {
    const state = await this.status();
    state.channels[delivery.channel] = delivery;
    state.recent = [delivery, ...state.recent].slice(0, 20);
    const write = this.writes.then(() => this.deps.storage.writeJsonAtomic(this.file, state));
    this.writes = write.catch((error) => this.deps.logError(`Could not save the alert status: ${(error as Error).message}`));
    await this.writes;
  }

  private text(event: AlertEvent): string {
    const lines = [`[Lifeboat on ${this.server}] ${event.title}: ${event.message}`];
    if (event.filename) lines.push(`Backup: ${event.filename}`);
    if (event.error && !event.message.includes(event.error)) lines.push(`Error: ${event.error}`);
    return lines.join('\n');
  }

  private sendEmail(settings: EmailSettings, event: AlertEvent): Promise<void> {
    return sendMail(settings, {
      subject: `[Lifeboat] ${event.title}`,
      text: `${this.text(event)}\n\nTime: ${new Date().toISOString()}\n\nSent by Lifeboat. Alerts are set up in Settings > Alerts.\n`,
    }).catch((error) => {
      throw new Error(`SMTP server ${settings.host}:${settings.port}: ${(error as Error).message}`);
    });
  }

  private sendWebhook(settings: WebhookSettings, event: AlertEvent): Promise<void> {
    const text = this.text(event);
    // "text" is read by Slack, Mattermost, Rocket.Chat, Google Chat; "content" by Discord; the rest is for scripts.
    return postJson(settings.url, {
      text,
      content: text,
      event: event.type,
      title: event.title,
      message: event.message,
      filename: event.filename ?? null,
      error: event.error ?? null,
      server: this.server,
      at: new Date().toISOString(),
    }).catch((error) => {
      throw new Error(`${origin(settings.url)}: ${(error as Error).message}${(error as { cause?: { code?: string } }).cause?.code ? ` (${(error as { cause: { code: string } }).cause.code})` : ''}`);
    });
  }

  /**
   * "Send test", once per channel (no retries), with the form's unsaved settings when given
   * (an empty password means the stored one). Answers what worked and what did not.
   */
  async test(input: { channel?: unknown; notifications?: unknown } = {}): Promise<{ ok: boolean; results: ChannelTestResult[] }> {
    const stored = (await this.deps.systemConfig.get()).notifications;
    const given = (input.notifications && typeof input.notifications === 'object' ? input.notifications : {}) as Partial<Record<Channel, object>>;
    const wanted: Channel[] = input.channel === 'email' || input.channel === 'webhook' ? [input.channel] : ['email', 'webhook'];
    const event: AlertEvent = { type: 'test', title: TITLES.test, message: 'This is a test alert from Lifeboat: this channel works.' };
    const results: ChannelTestResult[] = [];
    for (const channel of wanted) {
      const merged = { ...stored[channel], ...given[channel], enabled: true } as NotificationSettings[Channel];
      if (channel === 'email') {
        const password = (merged as EmailSettings).password;
        if (typeof password !== 'string' || password === '') (merged as EmailSettings).password = stored.email.password;
      }
      const checked = channel === 'email' ? validateEmail(merged) : validateWebhook(merged);
      if ('problems' in checked) {
        results.push({ channel, ok: false, message: checked.problems.map((p) => `${p.field}: ${p.message}`).join(' ') });
        continue;
      }
      try {
        if (channel === 'email') await this.sendEmail(checked.settings as EmailSettings, event);
        else await this.sendWebhook(checked.settings as WebhookSettings, event);
        const where = channel === 'email' ? `to ${(checked.settings as EmailSettings).to}` : `to ${origin((checked.settings as WebhookSettings).url)}`;
        results.push({ channel, ok: true, message: `Test ${channel === 'email' ? 'email' : 'webhook'} sent ${where}.` });
      } catch (error) {
        results.push({ channel, ok: false, message: (error as Error).message });
      }
    }
    return { ok: results.every((result) => result.ok), results };
  }
}
