import { create, createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** The answer to one reflection request, in terms both protocol versions share. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) over the descriptors
 * embedded in the generated code, so that grpcurl and `buf curl` can list the
 * services and build requests without the .proto files.
 */
export class Reflection {
  private readonly registry: Registry;
  /** Every file the services are defined in or import, by name ("sluice/v1/job.proto"). */
  private readonly filesByName = new Map<string, DescFile>();

  constructor(private readonly services: readonly DescService[]) {
    const visit = (f: DescFile) => {
      if (this.filesByName.has(f.proto.name)) return;
      this.filesByName.set(f.proto.name, f);
      f.dependencies.forEach(visit);
    };
    services.forEach((s) => visit(s.file));
    this.registry = createRegistry(...this.filesByName.values());
  }

  v1(): ServiceImpl<typeof v1.ServerReflection> {
    const registry = this;
    return {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: registry.answer(req) });
        }
      },
    };
  }

  v1alpha(): ServiceImpl<typeof v1alpha.ServerReflection> {
    const registry = this;
    return {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: registry.answer(req),
          });
        }
      },
    };
  }

  answer(req: Request): Answer {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.services.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename": {
        const file = this.filesByName.get(r.value);
        return file ? this.files(file) : this.error(NOT_FOUND, `file "${r.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOf(r.value);
        return file ? this.files(file) : this.error(NOT_FOUND, `symbol "${r.value}" not found`);
      }
      case "fileContainingExtension":
        return this.error(NOT_FOUND, `no extensions of "${r.value.containingType}" are defined`);
      case "allExtensionNumbersOfType":
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [] } };
      default:
        return this.error(UNIMPLEMENTED, "unknown reflection request");
    }
  }

  private fileOf(symbol: string): DescFile | undefined {
    const desc = this.registry.get(symbol);
    if (desc) return desc.file;
    // A method: "package.Service.Method".
    const dot = symbol.lastIndexOf(".");
    const service = dot > 0 ? this.registry.getService(symbol.slice(0, dot)) : undefined;
    return service?.methods.some((m) => m.name === symbol.slice(dot + 1)) ? service.file : undefined;
  }

  /** The file and everything it imports, transitively, each once. */
  private files(file: DescFile): Answer {
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: [...seen].map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
    };
  }

  private error(errorCode: number, errorMessage: string): Answer {
    return { case: "errorResponse", value: { errorCode, errorMessage } };
  }
}
