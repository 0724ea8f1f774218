/**
 * Where the server keeps its sessions. The interface is what the server needs of a store; the
 * memory store keeps live connections in this process, so a restart loses them (clients are told
 * with close code 4404 and get their unacknowledged messages back in `session-lost`).
 */
import type { Connection } from './connection';

export interface SessionStore {
  get(id: string): Connection | undefined;
  set(id: string, conn: Connection): void;
  delete(id: string): void;
  readonly size: number;
  values(): IterableIterator<Connection>;
}

export class MemoryStore implements SessionStore {
  private map = new Map<string, Connection>();
  get(id: string): Connection | undefined {
    return this.map.get(id);
  }
  set(id: string, conn: Connection): void {
    this.map.set(id, conn);
  }
  delete(id: string): void {
    this.map.delete(id);
  }
  get size(): number {
    return this.map.size;
  }
  values(): IterableIterator<Connection> {
    return this.map.values();
  }
}
