"""The data plane: the OpenAI- and Azure-style routes callers use, and /health.

    operations   the allowlist of operations forwarded, and the api-version format
    handlers     authenticate, authorize the model, forward; list the caller's models
    responses_store   stored responses: recorded as their creator's, used only by who may
    files        the files API, each file reachable only by its uploader (list, retrieve, content, delete)
    upload       uploading a file into a model's account, recorded as the caller's
    multipart    strict multipart/form-data reading
    listing      lists of the caller's own objects, gathered from the accounts that hold them
    by_id        a stored object named in a path, found only when the caller may use it
    recording    recording a new upstream object as its creator's, or taking it back
    query        a route's query parameters, allowlisted (and the classic shape's api-version)
    vector_stores, vector_store_files, vector_store_access, vector_store_routes   vector stores, their
                 files and file batches, each store reachable only by its creator
    media        image edits, transcriptions and translations: multipart operations on a model
    form_writer  the multipart form one upstream target gets
    batches      the Batch API, each batch reachable only by its creator (create, retrieve, list, cancel)
    batch_create  a new batch's request, and its input file rewritten and uploaded as the caller's
    batch_input  checking a batch input file's lines and rewriting their model to the deployment
    batch_results  a finished batch's result files recorded as its owner's, its usage charged once

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.
"""

from __future__ import annotations

from ..http import Route, route
from . import batches, files, media, upload
from . import handlers as h
from .responses_store import ROUTES as RESPONSES_ROUTES
from .vector_store_routes import ROUTES as VECTOR_STORE_ROUTES

ROUTES: tuple[Route, ...] = (
    route("v1/chat/completions", ("POST",), "chat_completions", h.chat_completions),
    route("v1/completions", ("POST",), "completions", h.completions),
    route("v1/embeddings", ("POST",), "embeddings", h.embeddings),
    route("v1/responses", ("POST",), "responses", h.responses),
    route("v1/images/generations", ("POST",), "images_generations", h.images_generations),
    route("v1/audio/speech", ("POST",), "audio_speech", h.audio_speech),
    route("v1/models", ("GET",), "list_models", h.list_models),
    route("openai/models", ("GET",), "list_models_azure", h.list_models),
    route("openai/v1/models", ("GET",), "list_models_azure_v1", h.list_models),
    *media.routes(),
    route("openai/deployments/{model}/{*operation}", ("POST",), "azure_deployment", h.azure_deployment),
    route("openai/responses", ("POST",), "azure_responses", h.azure_responses),
    *RESPONSES_ROUTES,
    *files.routes(upload.create),
    *VECTOR_STORE_ROUTES,
    *batches.routes(),
    route("openai/v1/{*operation}", ("POST",), "azure_v1", h.azure_v1),
    route("health", ("GET",), "health", h.health),
)
