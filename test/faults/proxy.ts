/**
 * A TCP proxy a worker connects to PostgreSQL through, so a test can partition that worker from
 * the database: `blackhole()` stops moving bytes both ways without closing anything (the sockets
 * stay open, what is sent waits in the kernel's buffers, new connections are accepted and held),
 * as a dead link or a dropped route would; `heal()` lets everything through again, intact, as
 * TCP retransmission would after a partition ends.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class PartitionProxy {
  private readonly pairs = new Set<Pair>();
  private readonly held: Socket[] = [];
  private blackholed = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: number,
  ) {}

  static async start(targetPort: number): Promise<PartitionProxy> {
    const box: { proxy?: PartitionProxy } = {};
    const server = createServer((client) => box.proxy!.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('proxy has no port');
    box.proxy = new PartitionProxy(server, address.port, targetPort);
    return box.proxy;
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  get partitioned(): boolean {
    return this.blackholed;
  }

  private accept(client: Socket): void {
    client.on('error', () => {});
    if (this.blackholed) {
      client.pause();
      this.held.push(client);
      return;
    }
    this.link(client);
  }

  private link(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', drop);
    client.on('error', drop);
    upstream.on('close', drop);
    client.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  blackhole(): void {
    this.blackholed = true;
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  heal(): void {
    this.blackholed = false;
    for (const { client, upstream } of this.pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
    }
    for (const client of this.held.splice(0)) {
      if (!client.destroyed) this.link(client);
    }
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    for (const c of this.held) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
