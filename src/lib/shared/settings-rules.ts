import type { EmailSettings, NotificationSettings, OffsiteSettings, RetentionGenerations, WebhookSettings } from './types';

/**
 * Browser-safe rules for the off-site, retention and alert settings, shared by the Settings
 * page (messages next to the field) and the server (400 naming the field). Each problem names
 * its field by its path in the system config.
 */

export interface FieldProblem {
  field: string;
  message: string;
}

export const DEFAULT_OFFSITE: OffsiteSettings = {
  enabled: false,
  endpoint: '',
  region: 'us-east-1',
  bucket: '',
  prefix: 'lifeboat',
  accessKeyId: '',
  secretAccessKey: '',
  forcePathStyle: true,
  keepLastAmount: 14,
};

export const DEFAULT_NOTIFICATIONS: NotificationSettings = {
  email: { enabled: false, host: '', port: 587, secure: false, username: '', password: '', from: '', to: '' },
  webhook: { enabled: false, url: '' },
};

export const DEFAULT_RESTORE_POINTS = { keepLastAmount: 3 };
export const DEFAULT_UPLOADS = { keepDays: 0 };
/** Sundays at 04:00: after the nightly backup (02:00 by default), so the drill tests the newest. */
export const DEFAULT_DRILL = { enabled: true, cronExpression: '0 4 * * 0' };

const isWhole = (value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;

const text = (value: unknown): string => (typeof value === 'string' ? value.trim() : '');

function httpUrlProblem(value: string, what: string): string | null {
  if (!value) return `Enter the ${what}, e.g. https://…`;
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `The ${what} must start with http:// or https:// (got "${url.protocol}").`;
    return null;
  } catch {
    return `"${value}" is not a valid URL: write it in full, e.g. https://s3.example.com.`;
  }
}

/** A loose address check: something@something, enough to catch a missing or misplaced part. */
const EMAIL = /^[^\s@<>,]+@[^\s@<>,]+$/;

/** "Name <a@b>" or "a@b". */
function addressOf(value: string): string {
  const angle = /<([^>]+)>\s*$/.exec(value);
  return (angle ? angle[1] : value).trim();
}

export function emailList(value: string): string[] {
  return value
    .split(/[,;]/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** Keys are `prefix/name`: a prefix is plain path segments, without leading or trailing slashes. */
export function normalisePrefix(value: string): string {
  return value.trim().replace(/^\/+|\/+$/g, '');
}

export function validateOffsite(input: unknown, field = 'backup.offsite'): { settings: OffsiteSettings } | { problems: FieldProblem[] } {
  const value = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  const problem = (name: string, message: string) => problems.push({ field: `${field}.${name}`, message });
  for (const name of ['enabled', 'forcePathStyle'] as const) {
    if (typeof value[name] !== 'boolean') problem(name, `"${name}" must be true or false.`);
  }
  for (const name of ['endpoint', 'region', 'bucket', 'prefix', 'accessKeyId', 'secretAccessKey'] as const) {
    if (value[name] !== undefined && typeof value[name] !== 'string') problem(name, `"${name}" must be text.`);
  }
  const settings: OffsiteSettings = {
    enabled: value.enabled === true,
    endpoint: text(value.endpoint).replace(/\/+$/, ''),
    region: text(value.region),
    bucket: text(value.bucket),
    prefix: normalisePrefix(text(value.prefix)),
    accessKeyId: text(value.accessKeyId),
    secretAccessKey: typeof value.secretAccessKey === 'string' ? value.secretAccessKey : '',
    forcePathStyle: value.forcePathStyle !== false,
    keepLastAmount: value.keepLastAmount as number,
  };
  if (!isWhole(value.keepLastAmount, 1, 10_000)) problem('keepLastAmount', `Copies to keep off-site must be a whole number of at least 1 (got ${JSON.stringify(value.keepLastAmount ?? null)}).`);
  if (settings.prefix.split('/').some((part) => part === '..' || part === '.') || /[\\\u0000-\u001f]/.test(settings.prefix)) {
    problem('prefix', 'The folder (prefix) may not contain "..", "." segments, backslashes or control characters.');
  }
  if (settings.enabled) {
    // An empty endpoint means Amazon S3 itself; anything else must be a full URL.
    if (settings.endpoint) {
      const urlProblem = httpUrlProblem(settings.endpoint, 'endpoint URL');
      if (urlProblem) problem('endpoint', urlProblem);
    }
    if (!settings.region) problem('region', 'Enter the region, e.g. "us-east-1" (Cloudflare R2: "auto"; MinIO and Garage: the one they are configured with).');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9.\-_]{1,253}[a-zA-Z0-9]$/.test(settings.bucket)) problem('bucket', 'Enter the bucket name: 3 to 255 letters, digits, dots, hyphens or underscores, starting and ending with a letter or digit.');
    if (!settings.accessKeyId) problem('accessKeyId', 'Enter the access key ID given by the storage provider.');
    if (!settings.secretAccessKey) problem('secretAccessKey', 'Enter the secret access key given by the storage provider.');
  }
  return problems.length ? { problems } : { settings };
}

export function validateEmail(input: unknown, field = 'notifications.email'): { settings: EmailSettings } | { problems: FieldProblem[] } {
  const value = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  const problem = (name: string, message: string) => problems.push({ field: `${field}.${name}`, message });
  for (const name of ['enabled', 'secure'] as const) {
    if (typeof value[name] !== 'boolean') problem(name, `"${name}" must be true or false.`);
  }
  for (const name of ['host', 'username', 'password', 'from', 'to'] as const) {
    if (value[name] !== undefined && typeof value[name] !== 'string') problem(name, `"${name}" must be text.`);
  }
  const settings: EmailSettings = {
    enabled: value.enabled === true,
    host: text(value.host),
    port: value.port as number,
    secure: value.secure === true,
    username: text(value.username),
    password: typeof value.password === 'string' ? value.password : '',
    from: text(value.from),
    to: text(value.to),
  };
  if (!isWhole(value.port, 1, 65535)) problem('port', `The port must be a whole number from 1 to 65535, usually 587 (STARTTLS) or 465 (TLS) (got ${JSON.stringify(value.port ?? null)}).`);
  if (settings.enabled) {
    if (!settings.host) problem('host', 'Enter the SMTP server, e.g. smtp.example.com.');
    if (!EMAIL.test(addressOf(settings.from))) problem('from', 'Enter the sender address, e.g. lifeboat@example.com or "Lifeboat <lifeboat@example.com>".');
    const to = emailList(settings.to);
    if (!to.length) problem('to', 'Enter at least one recipient address.');
    const bad = to.filter((address) => !EMAIL.test(addressOf(address)));
    if (bad.length) problem('to', `Not an email address: ${bad.join(', ')}. Separate several addresses with commas.`);
  }
  return problems.length ? { problems } : { settings };
}

export function validateWebhook(input: unknown, field = 'notifications.webhook'): { settings: WebhookSettings } | { problems: FieldProblem[] } {
  const value = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  if (typeof value.enabled !== 'boolean') problems.push({ field: `${field}.enabled`, message: '"enabled" must be true or false.' });
  if (value.url !== undefined && typeof value.url !== 'string') problems.push({ field: `${field}.url`, message: '"url" must be text.' });
  const settings: WebhookSettings = { enabled: value.enabled === true, url: text(value.url) };
  if (settings.enabled || settings.url) {
    const urlProblem = httpUrlProblem(settings.url, 'webhook URL');
    if (urlProblem) problems.push({ field: `${field}.url`, message: urlProblem });
  }
  return problems.length ? { problems } : { settings };
}

export function validateKeep(value: unknown, field: string, min: number, what: string): FieldProblem | null {
  return isWhole(value, min, 100_000) ? null : { field, message: `${what} must be a whole number of at least ${min} (got ${JSON.stringify(value ?? null)}).` };
}

/** null (or absent) turns generations off; otherwise each count is a whole number and at least one is above 0. */
export function validateGenerations(value: unknown, field = 'backup.database.generations'): { generations: RetentionGenerations | null } | { problems: FieldProblem[] } {
  if (value === null || value === undefined) return { generations: null };
  if (typeof value !== 'object' || Array.isArray(value)) return { problems: [{ field, message: 'Generations must be {"daily": n, "weekly": n, "monthly": n}, or null to keep the last N instead.' }] };
  const input = value as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  for (const name of ['daily', 'weekly', 'monthly'] as const) {
    if (!isWhole(input[name], 0, 10_000)) problems.push({ field: `${field}.${name}`, message: `The ${name} count must be a whole number, 0 or more (got ${JSON.stringify(input[name] ?? null)}).` });
  }
  if (problems.length) return { problems };
  const generations = { daily: input.daily as number, weekly: input.weekly as number, monthly: input.monthly as number };
  if (generations.daily + generations.weekly + generations.monthly === 0) return { problems: [{ field, message: 'Keep at least one daily, weekly or monthly backup, or turn generations off.' }] };
  return { generations };
}

export function describeProblems(problems: FieldProblem[]): string {
  return problems.map(({ field, message }) => `${field}: ${message}`).join(' ');
}
