import { cronError, DEFAULT_SYSTEM_CONFIG, validateBackupSettings } from '../../shared/cron-schedule';
import { describeProblems, validateEmail, validateKeep, validateOffsite, validateWebhook, type FieldProblem } from '../../shared/settings-rules';
import type { SystemConfig } from '../../shared/types';
import type { SystemMetadataRepository } from '../repositories/system-metadata.repository';
import { badRequest } from '../errors';

export const SYSTEM_CONFIG_KEY = 'system-config';

type Listener = (config: SystemConfig) => void;

type Json = Record<string, unknown>;

const objectAt = (value: unknown, ...path: string[]): Json | undefined => {
  let current = value;
  for (const key of path) current = current && typeof current === 'object' ? (current as Json)[key] : undefined;
  return current && typeof current === 'object' && !Array.isArray(current) ? (current as Json) : undefined;
};

/** Stored values over the defaults, section by section, so a config saved by an older version gains new keys. */
function merge(stored: unknown): SystemConfig {
  const d = DEFAULT_SYSTEM_CONFIG;
  return {
    backup: {
      database: { ...d.backup.database, ...objectAt(stored, 'backup', 'database') },
      offsite: { ...d.backup.offsite, ...objectAt(stored, 'backup', 'offsite') },
      restorePoints: { ...d.backup.restorePoints, ...objectAt(stored, 'backup', 'restorePoints') },
      uploads: { ...d.backup.uploads, ...objectAt(stored, 'backup', 'uploads') },
      drill: { ...d.backup.drill, ...objectAt(stored, 'backup', 'drill') },
    },
    notifications: {
      email: { ...d.notifications.email, ...objectAt(stored, 'notifications', 'email') },
      webhook: { ...d.notifications.webhook, ...objectAt(stored, 'notifications', 'webhook') },
    },
  } as SystemConfig;
}

/** What the API and the Settings page get: secrets are write-only, replaced by whether one is stored. */
export function redact(config: SystemConfig): SystemConfig {
  const { offsite } = config.backup;
  const { email } = config.notifications;
  return {
    ...config,
    backup: { ...config.backup, offsite: { ...offsite, secretAccessKey: '', secretAccessKeySet: offsite.secretAccessKey !== '' } },
    notifications: { ...config.notifications, email: { ...email, password: '', passwordSet: email.password !== '' } },
  };
}

/** A section of the request: absent is "unchanged"; present, it must be an object. */
function section(input: unknown, field: string, problems: FieldProblem[]): Json | undefined {
  const path = field.split('.');
  let current: unknown = input;
  for (const key of path) {
    if (!current || typeof current !== 'object') return undefined;
    current = (current as Json)[key];
  }
  if (current === undefined) return undefined;
  if (!current || typeof current !== 'object' || Array.isArray(current)) {
    problems.push({ field, message: `"${field}" must be an object.` });
    return undefined;
  }
  return current as Json;
}

/**
 * The system config (backup schedule, retention, off-site copies, alerts), kept in
 * system_metadata like the reference's. Every change is validated as a whole, saved, then
 * announced, so the scheduler picks it up without a restart. Secrets (the off-site secret
 * key, the SMTP password) are never answered: an empty one in a change keeps the stored one.
 */
export class SystemConfigService {
  private readonly listeners = new Set<Listener>();

  constructor(private readonly metadata: SystemMetadataRepository) {}

  /** With secrets: for the services only, never for an answer. */
  async get(): Promise<SystemConfig> {
    return merge(await this.metadata.get(SYSTEM_CONFIG_KEY));
  }

  async getPublic(): Promise<SystemConfig> {
    return redact(await this.get());
  }

  async updatePublic(input: unknown): Promise<SystemConfig> {
    return redact(await this.update(input));
  }

  /** Accepts a whole config or just the parts to change; nothing is saved unless all of it is valid. */
  async update(input: unknown): Promise<SystemConfig> {
    if (!input || typeof input !== 'object' || Array.isArray(input)) throw badRequest('The system config must be a JSON object.');
    const current = await this.get();
    const problems: FieldProblem[] = [];
    const patch = {
      database: section(input, 'backup.database', problems),
      offsite: section(input, 'backup.offsite', problems),
      restorePoints: section(input, 'backup.restorePoints', problems),
      uploads: section(input, 'backup.uploads', problems),
      drill: section(input, 'backup.drill', problems),
      email: section(input, 'notifications.email', problems),
      webhook: section(input, 'notifications.webhook', problems),
    };
    if (problems.length) throw badRequest(describeProblems(problems));

    const database = validateBackupSettings({ ...current.backup.database, ...patch.database });
    if ('errors' in database) problems.push(...database.errors.map((message) => ({ field: 'backup.database', message })));

    // An empty (or absent) secret keeps the stored one: the page never has it to send back.
    const keepSecret = (value: unknown, stored: string) => (typeof value === 'string' && value !== '' ? value : stored);
    const offsite = validateOffsite({ ...current.backup.offsite, ...patch.offsite, secretAccessKey: keepSecret(patch.offsite?.secretAccessKey, current.backup.offsite.secretAccessKey) });
    if ('problems' in offsite) problems.push(...offsite.problems);
    const email = validateEmail({ ...current.notifications.email, ...patch.email, password: keepSecret(patch.email?.password, current.notifications.email.password) });
    if ('problems' in email) problems.push(...email.problems);
    const webhook = validateWebhook({ ...current.notifications.webhook, ...patch.webhook });
    if ('problems' in webhook) problems.push(...webhook.problems);

    const restorePoints = { ...current.backup.restorePoints, ...patch.restorePoints };
    const restoreProblem = validateKeep(restorePoints.keepLastAmount, 'backup.restorePoints.keepLastAmount', 1, 'Restore points to keep');
    if (restoreProblem) problems.push(restoreProblem);
    const uploads = { ...current.backup.uploads, ...patch.uploads };
    const uploadsProblem = validateKeep(uploads.keepDays, 'backup.uploads.keepDays', 0, 'Days to keep uploaded files (0 keeps them until deleted by hand)');
    if (uploadsProblem) problems.push(uploadsProblem);

    const drill = { ...current.backup.drill, ...patch.drill };
    if (typeof drill.enabled !== 'boolean') problems.push({ field: 'backup.drill.enabled', message: 'Weekly restore drill must be true or false.' });
    const drillCron = cronError(drill.cronExpression);
    if (drillCron) problems.push({ field: 'backup.drill.cronExpression', message: `Restore drill schedule: ${drillCron}` });

    if (problems.length || 'errors' in database || 'problems' in offsite || 'problems' in email || 'problems' in webhook) throw badRequest(describeProblems(problems));
    const next: SystemConfig = {
      backup: {
        database: database.settings,
        offsite: offsite.settings,
        restorePoints: { keepLastAmount: restorePoints.keepLastAmount },
        uploads: { keepDays: uploads.keepDays },
        drill: { enabled: drill.enabled, cronExpression: String(drill.cronExpression).trim() },
      },
      notifications: { email: email.settings, webhook: webhook.settings },
    };
    await this.metadata.set(SYSTEM_CONFIG_KEY, next);
    for (const listener of this.listeners) listener(next);
    return next;
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
