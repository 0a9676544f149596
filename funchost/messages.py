"""The host's requests to the worker, built as the Functions host builds them.

The host's capabilities in WorkerInitRequest are the ones that let a 3.13 worker stream HTTP: the
request and its answer then travel over plain HTTP between host and worker (the worker's HttpUri),
and the InvocationRequest carries only the request's head (method, URL, headers, query, route values).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from funchost import protos
from funchost.functions import Function

HOST_VERSION = "4.0.0"          # a 4.x host: the Functions runtime the app targets
HOST_CAPABILITIES = {           # what the host announces; HttpUri: it can proxy HTTP to the worker
    "HttpUri": "true",
    "RpcHttpBodyOnly": "true",
    "RawHttpBodyBytes": "true",
    "TypedDataCollection": "true",
    "RpcHttpTriggerMetadataRemoved": "true",
    "IncludeEmptyEntriesInMessagePayload": "true",
    "WorkerStatus": "true",
    "HandlesWorkerTerminateMessage": "true",
}
TIMER_DATA = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False}


def new_id() -> str:
    return str(uuid.uuid4())


def worker_init(app_dir: str) -> Any:
    return protos.StreamingMessage(request_id=new_id(), worker_init_request=protos.WorkerInitRequest(
        host_version=HOST_VERSION, capabilities=HOST_CAPABILITIES, function_app_directory=app_dir,
        worker_directory=app_dir))


def functions_metadata(app_dir: str) -> Any:
    request = protos.FunctionsMetadataRequest(function_app_directory=app_dir)
    return protos.StreamingMessage(request_id=new_id(), functions_metadata_request=request)


def function_load(fn: Function) -> Any:
    metadata = protos.RpcFunctionMetadata()
    metadata.CopyFrom(fn.metadata)
    metadata.properties["worker_indexed"] = "True"
    return protos.StreamingMessage(request_id=new_id(), function_load_request=protos.FunctionLoadRequest(
        function_id=fn.function_id, metadata=metadata))


def _invocation(fn: Function, data: Any, invocation_id: str) -> Any:
    return protos.StreamingMessage(request_id=new_id(), invocation_request=protos.InvocationRequest(
        invocation_id=invocation_id, function_id=fn.function_id,
        input_data=[protos.ParameterBinding(name=fn.trigger_param, data=data)]))


def http_invocation(fn: Function, invocation_id: str, *, method: str, url: str, headers: Mapping[str, str],
                    query: Mapping[str, str], params: Mapping[str, str]) -> Any:
    """The head of an HTTP request; its body goes to the worker's HttpUri, never through gRPC."""
    http = protos.RpcHttp(method=method, url=url, headers=dict(headers), query=dict(query),
                          params=dict(params))
    return _invocation(fn, protos.TypedData(http=http), invocation_id)


def json_invocation(fn: Function, invocation_id: str, payload: object) -> Any:
    """A non-HTTP trigger's data as JSON: a timer's TimerInfo, a warm-up's (empty) context."""
    return _invocation(fn, protos.TypedData(json=json.dumps(payload)), invocation_id)
