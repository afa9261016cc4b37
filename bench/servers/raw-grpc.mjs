// Baseline: @grpc/grpc-js with no svckit, the way a grpc-js user writes it without
// @grpc/proto-loader: the proto loaded with protobufjs, a service definition whose (de)serializers
// are the message Types' encode().finish() / decode(), and a handler. protobufjs decodes int64 fields
// as Long objects (it bundles the long package), so the sum is Long#add.
import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { ADDSVC_PROTO, serveGrpc } from "./grpc-common.mjs";

const root = protobuf.loadSync(ADDSVC_PROTO);
const SumRequest = root.lookupType("pb.SumRequest");
const SumReply = root.lookupType("pb.SumReply");

const AddService = {
  Sum: {
    path: "/pb.Add/Sum",
    requestStream: false,
    responseStream: false,
    requestSerialize: (message) => SumRequest.encode(message).finish(),
    requestDeserialize: (bytes) => SumRequest.decode(bytes),
    responseSerialize: (message) => SumReply.encode(message).finish(),
    responseDeserialize: (bytes) => SumReply.decode(bytes),
  },
};

const server = new grpc.Server();
server.addService(AddService, {
  Sum(call, callback) {
    const { a, b } = call.request;
    callback(null, { v: a.add(b), err: "" });
  },
});

serveGrpc(server);
