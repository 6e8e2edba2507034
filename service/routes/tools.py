"""The assistant tools as OpenAI-style functions: their definitions and a way to call them.

Both are derived from the MCP server's own tool list, so a function here is always the MCP
tool of the same name, with the same parameters and the same structured result.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, ValidationError

from service.assistant_tools import FailedToolCall
from service.deps import AssistantDep
from service.errors import ServiceError, describe_validation_errors, error_responses
from service.schemas import RequestModel

router = APIRouter(prefix="/tools", tags=["assistant tools"])


class ToolCall(RequestModel):
    name: str = Field(min_length=1, max_length=100, description="A tool from GET /tools/openai.")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Its arguments; null means the parameter's default."
    )


class ToolResult(BaseModel):
    name: str
    result: dict[str, Any] = Field(description="The structured result (the API's JSON).")
    text: str = Field(description="The same result as short text with numbered citations.")


class UnknownTool(ServiceError):
    status = 404
    code = "tool_not_found"


class ToolFailed(ServiceError):
    status = 422
    code = "tool_error"


@router.get("/openai", summary="The tools as OpenAI function definitions (strict)")
async def openai_tools(assistant: AssistantDep) -> list[dict[str, Any]]:
    """``[{"type": "function", "function": {"name", "description", "parameters", "strict"}}]``,
    ready for the ``tools`` parameter of a chat-completions request."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": strict_schema(tool.input_schema),
                "strict": True,
            },
        }
        for tool in await assistant.list_tools()
    ]


@router.post(
    "/call",
    response_model=ToolResult,
    summary="Run one tool",
    responses=error_responses(404, 422, _404="No tool of that name; see `GET /tools/openai`"),
)
async def call_tool(call: ToolCall, assistant: AssistantDep) -> ToolResult:
    """Run the tool a model asked for, with the arguments it gave; hand ``text`` (or
    ``result``) back to the model as the tool's output."""
    if call.name not in {tool.name for tool in await assistant.list_tools()}:
        raise UnknownTool(f"no tool named {call.name!r}; see GET /tools/openai")
    arguments = {name: value for name, value in call.arguments.items() if value is not None}
    try:
        outcome = await assistant.call_tool(call.name, arguments)
    except ToolError as exc:
        raise _as_service_error(exc) from None
    if not isinstance(outcome, CallToolResult):  # the SDK's InputRequiredResult: none of ours asks
        raise ToolFailed(f"{call.name} asked for more input, which this endpoint cannot give")
    text = "\n".join(block.text for block in outcome.content if isinstance(block, TextContent))
    return ToolResult(name=call.name, result=outcome.structured_content or {}, text=text)


def _as_service_error(exc: ToolError) -> ServiceError:
    """The SDK wraps a tool's own error; unwrap it to keep its message and status."""
    cause = exc.__cause__
    if isinstance(cause, FailedToolCall):
        if isinstance(cause.__cause__, ServiceError):  # e.g. paper_not_found, 404
            return cause.__cause__
        return ToolFailed(str(cause))
    if isinstance(cause, ValidationError):
        return ToolFailed(describe_validation_errors(cause.errors(), drop=()))
    return ToolFailed(str(exc))


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's strict form of a JSON Schema: every object lists all its properties as
    required and allows no others; a property that was optional becomes nullable instead
    (null meaning "the default"); ``title`` and ``default`` are dropped."""
    strict = copy.deepcopy(schema)
    _make_strict(strict)
    return strict


# Keywords OpenAI's strict mode refuses (it takes `pattern` and `format` on strings, and the
# numeric bounds): the lengths are still checked when the call runs.
STRICT_UNSUPPORTED = ("minLength", "maxLength")


def _make_strict(schema: Any) -> None:
    """Rewrite one schema node in place, then the schemas nested in it."""
    if not isinstance(schema, dict):
        return
    for keyword in ("title", "default", *STRICT_UNSUPPORTED):
        schema.pop(keyword, None)
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        for name in properties:
            if name not in required:
                properties[name] = _nullable(properties[name])
        schema["required"] = list(properties)
        schema["additionalProperties"] = False
    nested = [*properties.values(), *schema.get("$defs", {}).values(), schema.get("items")]
    nested += schema.get("anyOf", []) + schema.get("allOf", []) + schema.get("oneOf", [])
    for child in nested:
        _make_strict(child)


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    options = prop.get("anyOf", [])
    if {"type": "null"} in options or prop.get("type") == "null":
        return prop
    if isinstance(prop.get("type"), str) and "enum" not in prop:
        return {**prop, "type": [prop["type"], "null"]}
    description = prop.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [prop, {"type": "null"}]}
    if description:
        wrapped["description"] = description
    return wrapped
