// A real redis-server for integration tests: started on a free 127.0.0.1 port in a temp dir, with no
// persistence, and stopped by PID afterwards. Tests never depend on a Redis already running.
import net from "node:net";
import {
  findBinary,
  freePort,
  type ServerBinary,
  skipWithoutBinary,
  startServerBinary,
} from "./server-binary.js";

export { freePort };

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  /** The PID of the redis-server process now running (-1 while none runs). */
  readonly pid: number;
  /** Stops it (SIGTERM, then SIGKILL after 3 s) and removes its temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would; its temp dir stays until `stop()`. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty, after `kill()`. */
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open but nothing is answered, like a hung server. */
  pause(): void;
  /** Thaws it (SIGCONT) after `pause()`. */
  resume(): void;
}

const redisServer: ServerBinary = {
  name: "redis-server",
  envVar: "REDIS_SERVER",
  install: "apt-get install redis-server",
};

/** The redis-server binary: `$REDIS_SERVER`, else the first on `PATH` (or in /usr/bin, /usr/sbin, /usr/local/bin). */
export function findRedisServer(): string | undefined {
  return findBinary(redisServer);
}

/**
 * Whether the Redis tests must be skipped: only when redis-server is missing and `CI` is not `"true"`,
 * and then loudly. Under CI a missing binary does not skip: the tests run and fail in `startRedis`.
 */
export function skipWithoutRedis(suite: string): boolean {
  return skipWithoutBinary(redisServer, suite);
}

/** Whether a Redis on `port` answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let answer = "";
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
  });
}

/** Starts redis-server on a free port in a new temp dir; throws (also under CI) when it cannot. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const server = await startServerBinary(redisServer, {
    tempPrefix: "svckit-redis-",
    args: (dir) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
    ],
    ready: () => ping(port),
    pollInterval: 20,
  });
  return {
    port,
    get pid(): number {
      return server.pid;
    },
    stop: () => server.stop(),
    kill: () => server.kill(),
    async restart() {
      await server.kill();
      await server.start();
    },
    pause: () => server.signal("SIGSTOP"),
    resume: () => server.signal("SIGCONT"),
  };
}
