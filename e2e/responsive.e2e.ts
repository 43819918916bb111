import type { Browser, Locator, Page } from '@playwright/test';
import { ADMIN, expect, setupCodeOf, signIn, startInstance, test, type Instance } from './fixtures';
import { addDemoData, backUp, chooseUpload, copyStorage, entry, versionOneDumpGz } from './restore-helpers';

/**
 * The main journeys at a phone's, a tablet's and a desktop's width (issue 12): no page may be wider
 * than the window, touch targets are at least 40 px high, dialogs fit, and every screen is saved
 * under test-results/ (light, and dark where the colours matter). One app server for the signed-in
 * journeys and one old library for the first-run wizard, shared by the three widths.
 */
const WIDTHS = [
  { width: 390, height: 844 },
  { width: 768, height: 1024 },
  { width: 1280, height: 800 },
];

test.describe.configure({ mode: 'serial' });

let app: Instance;
let oldLibrary: Instance;

test.beforeAll(async ({ browser }) => {
  test.setTimeout(180_000);
  app = await startInstance();
  const page = await (await browser.newContext({ baseURL: app.baseURL })).newPage();
  expect((await page.request.post('/api/auth/admin-sign-up', { data: ADMIN })).status()).toBe(201);
  await signIn(page, ADMIN);
  await addDemoData(app, 1, 12);
  await backUp(page);
  await page.context().close();
  // A new machine given the old UPLOAD_LOCATION: no admin yet, backups in the folder.
  oldLibrary = await startInstance((uploadLocation) => copyStorage(app.uploadLocation, uploadLocation));
});

test.afterAll(async () => {
  await app?.stop();
  await oldLibrary?.stop();
});

/** The page is no wider than the window: nothing scrolls sideways. */
async function expectNoSideScroll(page: Page, screen: string): Promise<void> {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  expect(scrollWidth, `${screen}: the page is ${scrollWidth} px wide in a ${innerWidth} px window`).toBeLessThanOrEqual(innerWidth);
}

/** Buttons, form fields and navigation links a finger has to hit: at least 40 px high. */
async function expectTouchTargets(page: Page, screen: string): Promise<void> {
  const small = await page.evaluate(() => {
    const selector = 'button, summary, select, input:not([type="radio"]):not([type="checkbox"]):not([type="hidden"]), nav a, a[class*="rounded"]';
    return [...document.querySelectorAll<HTMLElement>(selector)]
      .filter((el) => el.checkVisibility() && !el.closest('dialog:not([open])'))
      .map((el) => ({ el, height: el.getBoundingClientRect().height }))
      .filter(({ height }) => height > 0 && height < 39.5)
      .map(({ el, height }) => `${el.tagName.toLowerCase()} "${(el.textContent || el.getAttribute('aria-label') || '').trim().slice(0, 40)}" ${height.toFixed(1)} px`);
  });
  expect(small, `${screen}: touch targets under 40 px`).toEqual([]);
}

async function expectInsideWindow(page: Page, box: Locator, screen: string): Promise<void> {
  const rect = (await box.boundingBox())!;
  const viewport = page.viewportSize()!;
  expect(rect.x, `${screen}: left edge`).toBeGreaterThanOrEqual(0);
  expect(rect.x + rect.width, `${screen}: right edge`).toBeLessThanOrEqual(viewport.width);
  expect(rect.y + rect.height, `${screen}: bottom edge`).toBeLessThanOrEqual(viewport.height);
}

/**
 * Checks the screen as it is now and saves it; `dark` saves the dark-mode version too. A dialog is
 * saved as the window shows it (a full-page capture would move the sticky header into the middle).
 */
async function screen(page: Page, name: string, options: { dark?: boolean; dialog?: boolean } = {}): Promise<void> {
  const width = page.viewportSize()!.width;
  const fullPage = !options.dialog;
  await expectNoSideScroll(page, `${name} at ${width} px`);
  await expectTouchTargets(page, `${name} at ${width} px`);
  await page.screenshot({ path: test.info().outputPath(`${width}-${name}.png`), fullPage });
  if (options.dark) {
    await page.emulateMedia({ colorScheme: 'dark' });
    await expectNoSideScroll(page, `${name} (dark) at ${width} px`);
    await page.screenshot({ path: test.info().outputPath(`${width}-${name}-dark.png`), fullPage });
    await page.emulateMedia({ colorScheme: 'light' });
  }
}

async function newPage(browser: Browser, baseURL: string, viewport: { width: number; height: number }): Promise<Page> {
  const context = await browser.newContext({ baseURL, viewport, hasTouch: viewport.width < 1024 });
  return context.newPage();
}

/** The header's own links and Sign out: inline on wide screens, behind the menu button on narrow ones. */
async function openHeaderMenuIfCollapsed(page: Page): Promise<void> {
  const menu = page.getByRole('button', { name: 'Account menu' });
  if (await menu.isVisible()) {
    await menu.click();
    await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
  }
}

for (const viewport of WIDTHS) {
  const { width } = viewport;

  test(`signed-in journeys at ${width} px: sign-in, pages, Job Queues backup, uploads, restore confirm, /maintenance progress`, async ({ browser }) => {
    const page = await newPage(browser, app.baseURL, viewport);

    await page.goto('/auth/login');
    await screen(page, 'sign-in', { dark: true });
    await signIn(page, ADMIN);
    await expect(page.getByTestId('asset').first()).toBeVisible();
    await screen(page, 'photos', { dark: true });
    await openHeaderMenuIfCollapsed(page);
    await expect(page.getByTestId('current-user')).toContainText(ADMIN.name);
    await screen(page, 'header-open');

    for (const [path, heading] of [
      ['/admin', 'Administration'],
      ['/admin/users', 'Users'],
      ['/admin/settings', 'Settings'],
    ]) {
      await page.goto(path);
      await expect(page.getByRole('heading', { name: heading, level: 1 })).toBeVisible();
      await screen(page, path.slice(1).replaceAll('/', '-'), { dark: path === '/admin' });
    }

    // The administration menu: a compact menu on a phone, the side navigation on wider screens.
    const adminMenu = page.getByRole('button', { name: /^Administration menu/ });
    if (width < 768) {
      await expect(adminMenu).toBeVisible();
      await adminMenu.click();
      await screen(page, 'admin-menu-open');
    } else {
      await expect(adminMenu).toBeHidden();
    }
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Job Queues' }).click();
    await expect(page.getByRole('heading', { name: 'Job Queues', level: 1 })).toBeVisible();

    // Job Queues: Create job → Create Database Backup → Confirm.
    await page.getByRole('button', { name: 'Create job' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create job' });
    await expect(dialog).toBeVisible();
    await expectInsideWindow(page, dialog, `Create job at ${width} px`);
    await screen(page, 'create-job-dialog', { dialog: true });
    await dialog.getByRole('radio', { name: /Create Database Backup/ }).check();
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    const card = page.getByTestId('queue-backup-database');
    await expect(card.getByTestId('backup-database-active')).toHaveText('0');
    await expect(card.getByTestId('backup-database-last-run')).toContainText('Succeeded');
    const made = ((await card.getByTestId('backup-database-last-run').textContent()) ?? '').match(/immich-db-backup-\S+?\.sql\.gz/)![0];
    await screen(page, 'job-queues', { dark: true });

    // Maintenance: the list, and uploads whose names carry no version.
    await page.goto('/admin/maintenance');
    await expect(entry(page, made)).toBeVisible();
    await screen(page, 'maintenance');
    const own = await (await page.request.get(`/api/admin/database-backups/${made}`)).body();
    await chooseUpload(page, { name: `own-${width}.sql.gz`, mimeType: 'application/gzip', buffer: own });
    const ownRow = entry(page, `uploaded-own-${width}.sql.gz`);
    await expect(ownRow).toContainText("Version v1.1.0 (read from the file's contents)");
    const green = ownRow.getByRole('img', { name: /^Made by this version \(v1\.1\.0\) \(read from the file's contents\)/ });
    await expect(green).toBeVisible();
    await expect(ownRow.getByTestId('compatibility')).toHaveAttribute('data-compatibility', 'same');

    await chooseUpload(page, { name: `old-${width}.sql.gz`, mimeType: 'application/gzip', buffer: await versionOneDumpGz({ assets: 2 }) });
    const oldRow = entry(page, `uploaded-old-${width}.sql.gz`);
    const yellow = oldRow.getByRole('img', { name: /^Made by an older version \(v1\.0\.0\) \(read from the file's contents\)/ });
    await expect(yellow).toBeVisible();
    await expect(yellow).toHaveCSS('color', 'rgb(254, 176, 1)');

    const noSchema = "--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n\nCREATE TABLE public.notes (id integer);\n";
    await chooseUpload(page, { name: `notes-${width}.sql`, mimeType: 'application/sql', buffer: Buffer.from(noSchema) });
    const notesRow = entry(page, `uploaded-notes-${width}.sql`);
    const red = notesRow.getByRole('img', { name: /^Version unknown/ });
    await expect(red).toBeVisible();
    await expect(notesRow.getByTestId('compatibility')).toHaveAttribute('data-compatibility', 'unknown');
    await expect(notesRow).toContainText('Version unknown');
    // Each backup's actions sit below its name on a phone, beside it on a desktop.
    const name = await notesRow.getByText(`uploaded-notes-${width}.sql`).boundingBox();
    const actions = await notesRow.getByRole('button', { name: /^Restore/ }).boundingBox();
    if (width < 768) expect(actions!.y, 'actions below the name').toBeGreaterThan(name!.y + name!.height - 1);
    if (width >= 1280) expect(actions!.x, 'actions beside the name').toBeGreaterThan(name!.x + name!.width - 1);
    await screen(page, 'maintenance-uploads', { dark: true });

    // Restore confirm: the dialog fits the screen; Cancel leaves everything as it was.
    await ownRow.getByRole('button', { name: /^Restore/ }).click();
    const confirm = page.getByRole('dialog', { name: 'Restore this backup?' });
    await expect(confirm).toBeVisible();
    await expectInsideWindow(page, confirm, `restore confirm at ${width} px`);
    await screen(page, 'restore-confirm', { dark: true, dialog: true });
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await expect(confirm).toBeHidden();

    // /maintenance progress. A small library restores in seconds: once the progress shows, the
    // browser goes offline, so the screen stays on that status (its event stream cut) while it is checked.
    await entry(page, made).getByRole('button', { name: /^Restore/ }).click();
    await confirm.getByRole('button', { name: 'Restore', exact: true }).click();
    await expect(page).toHaveURL(/\/maintenance$/);
    await expect(page.getByTestId('restore-progress')).toBeVisible();
    await page.context().setOffline(true);
    await expect(page.getByTestId('restore-progress')).toBeVisible();
    await expect(page.getByTestId('current-task')).not.toBeEmpty();
    await screen(page, 'maintenance-progress', { dark: true });
    await page.context().setOffline(false);
    // The event stream reconnects by itself and brings the status of the moment. (A reload could come
    // after the restore ended, and /maintenance then sends the browser on to the app.)
    await expect(page.getByRole('heading', { name: 'Restore complete' })).toBeVisible({ timeout: 90_000 });
    await screen(page, 'maintenance-done');
    await page.context().close();
  });

  test(`first-run wizard at ${width} px`, async ({ browser }) => {
    const page = await newPage(browser, oldLibrary.baseURL, viewport);
    await page.goto('/');
    await expect(page).toHaveURL(/\/welcome$/);
    await screen(page, 'welcome', { dark: true });
    await page.getByRole('button', { name: 'Restore from backup' }).click();
    await page.getByLabel('Setup code').fill(setupCodeOf(oldLibrary));
    await screen(page, 'welcome-setup-code');
    await page.getByRole('button', { name: 'Continue to the restore' }).click();
    await expect(page).toHaveURL(/\/maintenance$/);

    await expect(page.getByRole('heading', { name: 'Step 1 of 3: Check storage' })).toBeVisible();
    await expect(page.getByTestId('integrity-table').locator('tr[data-folder="upload"]')).toContainText('Ready');
    await screen(page, 'wizard-storage', { dark: true });
    await page.getByRole('button', { name: 'Next' }).click();
    await expect(page.getByRole('heading', { name: 'Step 2 of 3: Choose a backup' })).toBeVisible();
    const first = page.getByTestId('backup-entry').first();
    await expect(first).toBeVisible();
    await screen(page, 'wizard-backups', { dark: true });
    await first.getByRole('button', { name: /^Restore/ }).click();
    await expect(page.getByRole('heading', { name: 'Step 3 of 3: Restore' })).toBeVisible();
    await screen(page, 'wizard-restore', { dark: true });
    // Leave the old library as it was for the next width.
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(page).toHaveURL(/\/welcome$/);
    await page.context().close();
  });
}
