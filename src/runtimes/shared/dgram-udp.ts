/**
 * UDP for the socket contract on `node:dgram`, shared by the Node adapter and the Deno adapter
 * (where `node:dgram` is stable and `Deno.listenDatagram` is not).
 *
 * @module
 */
import { createSocket } from "node:dgram";
import type { DatagramHandler, DatagramSocket, NetAddr } from "../../core/net/contract.ts";

/** Bind a UDP socket; an error after binding closes it (its owner notices through failing sends). */
export function bindDgram(addr: NetAddr, onMessage: DatagramHandler): Promise<DatagramSocket> {
  return new Promise<DatagramSocket>((resolve, reject) => {
    const socket = createSocket({ type: addr.host.includes(":") ? "udp6" : "udp4" });
    socket.once("error", reject);
    // Each message arrives in its own buffer: the view is ours to keep.
    socket.on("message", (msg, rinfo) => onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { host: rinfo.address, port: rinfo.port }));
    socket.bind({ address: addr.host, port: addr.port, exclusive: true }, () => {
      socket.off("error", reject);
      let closed = false;
      const shut = (): void => {
        if (closed) return;
        closed = true;
        socket.close();
      };
      socket.on("error", shut);
      const bound = socket.address();
      resolve({
        addr: { host: bound.address, port: bound.port },
        send: (bytes, to) =>
          new Promise<void>((ok, fail) => {
            if (closed) return fail(new Error("send on a closed UDP socket"));
            socket.send(bytes, to.port, to.host, (e) => (e ? fail(e) : ok()));
          }),
        close: shut,
      });
    });
  });
}
