/**
 * Which backup files something is reading right now (a download, an off-site copy, a fetch
 * from off-site, a restore drill). Retention asks before it deletes: a file in use is skipped
 * and tried again next time. In memory: the uses end with the process.
 */
export class FileUse {
  private readonly uses = new Map<string, string[]>();

  /** Marks `name` as used for `purpose`; the returned function ends that use (once). */
  acquire(name: string, purpose: string): () => void {
    const list = this.uses.get(name) ?? [];
    list.push(purpose);
    this.uses.set(name, list);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const current = this.uses.get(name) ?? [];
      current.splice(current.indexOf(purpose), 1);
      if (current.length) this.uses.set(name, current);
      else this.uses.delete(name);
    };
  }

  /** What uses the file (e.g. "download"), or null. */
  usedBy(name: string): string | null {
    return this.uses.get(name)?.join(', ') ?? null;
  }
}
