// svckit on its node:http2 engine: the same Sum service as svckit-grpc.mjs (proto loaded by
// @svckit/codec-protobuf, the endpoint served by @svckit/transport-grpc's createGrpcHandler +
// bindService, go-kit style decoder and encoder) with one line changed: the server is
// @svckit/grpc-h2's createGrpcServer() instead of grpc-js's new grpc.Server().
import { loadProtoSync } from "@svckit/codec-protobuf";
import { createGrpcServer } from "@svckit/grpc-h2";
import { bindService, createGrpcHandler } from "@svckit/transport-grpc";
import { ADDSVC_PROTO, serveGrpc } from "./grpc-common.mjs";

const add = loadProtoSync(ADDSVC_PROTO).service("pb.Add");
const sum = async (_ctx, req) => ({ v: req.a + req.b });
const decodeSumRequest = (_ctx, message) => ({ a: Number(message.a), b: Number(message.b) });
const encodeSumResponse = (_ctx, response) => ({ v: BigInt(response.v), err: "" });

const server = createGrpcServer();
bindService(server, add, { Sum: createGrpcHandler(sum, decodeSumRequest, encodeSumResponse) });

serveGrpc(server);
