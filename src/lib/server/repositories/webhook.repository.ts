/** POSTs one JSON body to a webhook: thin, no rules. Anything but a 2xx answer is an error naming the status. */
export async function postJson(url: string, body: unknown, timeoutMs = 15_000): Promise<void> {
  const answer = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'Lifeboat' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'error',
  });
  // Read (and drop) the answer, so the connection is freed.
  const text = await answer.text().catch(() => '');
  if (!answer.ok) throw new Error(`The webhook answered ${answer.status} ${answer.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
}
