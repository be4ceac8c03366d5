"""The watsonx Orchestrate artefacts (examples/orchestrate/, tests/fixtures/orchestrate_*) checked
with IBM's own code: the ADK's OpenAPI importer and agent spec model, and its plug-in models.

Importing the ADK reconfigures logging for the whole process (`logging.config.dictConfig` and
coloured level names, which would change the kit's JSON log lines in later tests) and writes
~/.config/orchestrate/config.yaml. So everything that imports it runs in a child Python with
HOME in a temporary directory and proxies pointing at a closed loopback port (an accidental
network call fails instead of leaving the machine); this module is that child's script too.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "examples/orchestrate/openapi.yaml"
AGENT = ROOT / "examples/orchestrate/agent.yaml"
FIXTURES = ROOT / "tests/fixtures"
REQUESTS = {"pre": FIXTURES / "orchestrate_pre_invoke_request.json",
            "post": FIXTURES / "orchestrate_post_invoke_request.json"}
RESULTS = {"pre": [FIXTURES / "orchestrate_pre_invoke_result.translated.json",
                   FIXTURES / "orchestrate_pre_invoke_result.unsupported.json"],
           "post": [FIXTURES / "orchestrate_post_invoke_result.translated.json"]}
PATHS = {"pre": "/plugins/agent-pre-invoke", "post": "/plugins/agent-post-invoke"}
HOOKS = {"pre": "agent_pre_invoke", "post": "agent_post_invoke"}
NO_VALIDATOR = "openapi-spec-validator (requirements-test.txt) is not installed"
# The OpenAPI document's component for each ADK model (same names, so drift shows by name).
MODELS = ("AgentPreInvokePayload", "AgentPostInvokePayload", "PluginContext", "GlobalContext",
          "HttpHeaderPayload", "Message", "TextContent", "PluginViolation")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def adk_report() -> dict[str, Any]:
    """Run in the child: what the ADK makes of the artefacts, as JSON-ready data."""
    from ibm_watsonx_orchestrate.agent_builder.agents import Agent
    from ibm_watsonx_orchestrate.agent_builder.tools.openapi_tool import (
        create_openapi_json_tools_from_uri)
    from ibm_watsonx_orchestrate_core.types.tools import types as plug
    from pydantic import ValidationError

    # What `orchestrate tools import -k openapi -f FILE` calls (tools_controller's
    # import_openapi_tool), on a local file: no network.
    tools = asyncio.run(create_openapi_json_tools_from_uri(str(OPENAPI)))
    report: dict[str, Any] = {"tools": [], "requests": {}, "results": {}, "refused": {}}
    for tool in tools:
        spec = tool.__tool_spec__
        binding = spec.binding.openapi
        report["tools"].append({
            "name": spec.name, "description": spec.description, "hook": binding.plugin_hook,
            "path": binding.http_path, "method": binding.http_method, "servers": binding.servers,
            "security": [s.model_dump(mode="json", by_alias=True, exclude_none=True)
                         for s in binding.security or []]})
    agent = Agent.from_spec(str(AGENT))
    report["agent"] = {"name": agent.name,
                       "pre": [p.plugin_name for p in agent.plugins.agent_pre_invoke],
                       "post": [p.plugin_name for p in agent.plugins.agent_post_invoke]}

    payload_models = {"pre": plug.AgentPreInvokePayload, "post": plug.AgentPostInvokePayload}
    result_models = {"pre": plug.AgentPreInvokeResult, "post": plug.AgentPostInvokeResult}
    for phase, path in REQUESTS.items():
        body = load(path)
        payload = payload_models[phase].model_validate(body["payload"])
        context = plug.PluginContext.model_validate(body["context"])
        report["requests"][phase] = {"payload": payload.model_dump(mode="json"),
                                     "context": context.model_dump(mode="json")}
    for phase, paths in RESULTS.items():
        for path in paths:
            # The kit leaves out null members of its results (it never sends "violation": null).
            report["results"][path.name] = result_models[phase].model_validate(
                load(path)).model_dump(mode="json", exclude_unset=True)
    # The models must have teeth: a violation without its code, a message with an unknown role.
    broken = load(RESULTS["pre"][1])
    del broken["violation"]["code"]
    bad_role = load(REQUESTS["pre"])["payload"]
    bad_role["messages"][-1]["role"] = "system"
    for name, model, data in (("violation without code", plug.AgentPreInvokeResult, broken),
                              ("role system", plug.AgentPreInvokePayload, bad_role)):
        try:
            model.model_validate(data)
            report["refused"][name] = False
        except ValidationError:
            report["refused"][name] = True
    report["fields"] = {name: sorted(getattr(plug, name).model_fields)
                        for name in MODELS}
    return report


@pytest.fixture(scope="module")
def adk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if importlib.util.find_spec("ibm_watsonx_orchestrate") is None:
        pytest.skip("the watsonx Orchestrate ADK (ibm-watsonx-orchestrate, in "
                    "requirements-test.txt) is not installed")
    home = tmp_path_factory.mktemp("adk-home")
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    closed = "http://127.0.0.1:9"
    env.update(HOME=str(home), HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed,
               PYTHONIOENCODING="utf-8")
    # The ADK's BadRequest calls sys.exit unless this is set; with it, errors raise instead.
    env.setdefault("PYTEST_CURRENT_TEST", "test_orchestrate_artefacts child")
    child = subprocess.run([sys.executable, __file__], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    # The ADK logs to stdout as well; the report is the last line.
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def test_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason=NO_VALIDATOR)
    validator.validate(openapi)
    assert openapi["openapi"].startswith("3.0.")     # IBM: "The OpenAPI version must be 3.0"


def test_openapi_document_has_what_orchestrate_requires(openapi: dict[str, Any]) -> None:
    """Exactly the kit's two plug-in operations, each with an operationId and a description, one
    server URL without parameters, and API key and bearer schemes as the kit verifies them."""
    assert {path: list(ops) for path, ops in openapi["paths"].items()} == {
        PATHS["pre"]: ["post"], PATHS["post"]: ["post"]}
    for phase, path in PATHS.items():
        operation = openapi["paths"][path]["post"]
        assert operation["x-ibm-orchestrate-plugin"] == {"hook": HOOKS[phase]}
        assert operation["operationId"] and operation["description"].strip()
    [server] = openapi["servers"]
    assert server["url"].startswith("https://") and "{" not in server["url"]
    assert "variables" not in server
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert openapi["security"] == [{"apiKey": []}, {"bearer": []}]


def test_adk_importer_reads_both_operations_as_plugins(adk: dict[str, Any],
                                                       openapi: dict[str, Any]) -> None:
    by_path = {tool["path"]: tool for tool in adk["tools"]}
    assert sorted(by_path) == sorted(PATHS.values())
    for phase, path in PATHS.items():
        tool = by_path[path]
        operation = openapi["paths"][path]["post"]
        assert tool["hook"] == HOOKS[phase]
        assert tool["name"] == operation["operationId"]
        assert tool["method"] == "POST"
        assert tool["servers"] == [openapi["servers"][0]["url"]]
        assert tool["description"] == operation["description"]
        assert {"type": "apiKey", "in": "header", "name": "X-API-Key"} in tool["security"]
        assert {"type": "http", "scheme": "bearer"} in tool["security"]


def test_agent_spec_attaches_both_plugins(adk: dict[str, Any]) -> None:
    """The agent YAML loads with the ADK's model and names the tools the importer created, each
    under its own hook (the agents controller refuses a plug-in listed under the other hook)."""
    names = {tool["hook"]: tool["name"] for tool in adk["tools"]}
    assert adk["agent"]["pre"] == [names["agent_pre_invoke"]]
    assert adk["agent"]["post"] == [names["agent_post_invoke"]]


@pytest.mark.parametrize("phase", ["pre", "post"])
def test_request_fixtures_are_shaped_as_the_adk_models(adk: dict[str, Any], phase: str) -> None:
    """Validated and dumped again by the models, each fixture comes back unchanged: no field the
    models do not know, none left out."""
    body = load(REQUESTS[phase])
    assert set(body) == {"payload", "context"}
    assert adk["requests"][phase] == body


def test_sample_results_validate_against_the_adk_models(adk: dict[str, Any]) -> None:
    for paths in RESULTS.values():
        for path in paths:
            assert adk["results"][path.name] == load(path), path.name
    stopped = load(RESULTS["pre"][1])
    assert stopped["continue_processing"] is False and stopped["violation"]["description"]
    assert all(adk["refused"].values()), adk["refused"]


def test_request_fixtures_carry_what_the_kit_reads() -> None:
    """The Spanish user turn is the last message, the answer the first (as in IBM's examples),
    and the thread id is where the kit looks for it."""
    pre, post = load(REQUESTS["pre"]), load(REQUESTS["post"])
    assert pre["payload"]["messages"][-1]["role"] == "user"
    assert "sucursal" in pre["payload"]["messages"][-1]["content"]["text"]
    assert post["payload"]["messages"][0]["role"] == "assistant"
    for body in (pre, post):
        assert body["context"]["state"]["context"]["wxo_thread_id"]
        assert body["context"]["global_context"]["request_id"]


def test_openapi_schemas_list_the_adk_model_fields(adk: dict[str, Any],
                                                   openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name, fields in adk["fields"].items():
        assert sorted(schemas[name]["properties"]) == fields, name


def test_fixtures_match_the_openapi_schemas(openapi: dict[str, Any]) -> None:
    """The bodies and results IBM's models accept also pass the document's own schemas, so what
    Orchestrate is told to send is what it sends."""
    schema_validator = pytest.importorskip("openapi_schema_validator", reason=NO_VALIDATOR)

    def check(ref: str, instance: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{ref}", "components": openapi["components"]}
        schema_validator.validate(instance, schema, cls=schema_validator.OAS30Validator)

    check("PreInvokeRequest", load(REQUESTS["pre"]))
    check("PostInvokeRequest", load(REQUESTS["post"]))
    for path in RESULTS["pre"]:
        check("AgentPreInvokeResult", load(path))
    for path in RESULTS["post"]:
        check("AgentPostInvokeResult", load(path))


if __name__ == "__main__":
    print(json.dumps(adk_report(), ensure_ascii=False))
