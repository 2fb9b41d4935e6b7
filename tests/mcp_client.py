"""A real MCP client (the Python `mcp` SDK, not written here) driving `tracer mcp` over stdio or
`tracer serve --mcp` over streamable HTTP, for tests/mcp.rs.

    mcp_client.py stdio TRACER_BINARY [ARGS…]    # spawns `TRACER_BINARY mcp ARGS…`
    mcp_client.py http http://127.0.0.1:PORT/mcp [SIDECAR_HOST:PORT]

With a sidecar, live_compare_nodes and live_cluster_health are also asked about it.

Prints one JSON object on stdout with what each step returned (the Rust test asserts on it) and
a short human transcript under "transcript". Never exits non-zero for a tool's answer: the test
decides.
"""

import json
import sys
import time

import anyio
import jsonschema
from mcp import Client, StdioServerParameters

REPORT_SECONDS = int(os_env) if (os_env := __import__("os").environ.get("MCP_REPORT_SECONDS")) else 6
CANCEL_AFTER = 3.0


def structured(result):
    """A tool result as plain data."""
    text = " ".join(getattr(c, "text", "") for c in (result.content or []))
    return {
        "is_error": bool(result.is_error),
        "structured": result.structured_content,
        "text": text,
    }


async def scenario(target, sidecar=None):
    out = {"transcript": []}
    say = out["transcript"].append
    async with Client(target, read_timeout_seconds=120) as client:
        info = client.server_info
        out["server"] = {"name": info.name if info else None, "version": info.version if info else None,
                         "protocol": client.protocol_version}
        say(f"initialize -> {out['server']}")

        tools = (await client.list_tools()).tools
        listed = []
        for tool in tools:
            try:
                jsonschema.Draft202012Validator.check_schema(tool.input_schema)
                schema_ok = tool.input_schema.get("type") == "object"
            except jsonschema.SchemaError as e:  # pragma: no cover - reported to the test
                schema_ok = False
                say(f"bad schema for {tool.name}: {e}")
            ann = tool.annotations
            listed.append({
                "name": tool.name,
                "schema_ok": schema_ok,
                "has_output_schema": tool.output_schema is not None,
                "read_only": bool(ann and ann.read_only_hint),
            })
        out["tools"] = listed
        say("tools/list -> " + ", ".join(t["name"] for t in listed))

        prompts = (await client.list_prompts()).prompts
        out["prompts"] = [p.name for p in prompts]
        prompt = await client.get_prompt("diagnose_network_degradation", {"pod": "shop/cart"})
        out["prompt_text"] = " ".join(getattr(m.content, "text", "") for m in prompt.messages)
        resources = (await client.list_resources()).resources
        out["resources"] = [str(r.uri) for r in resources]
        runbook = await client.read_resource(str(resources[0].uri))
        out["runbook_chars"] = sum(len(getattr(c, "text", "")) for c in runbook.contents)

        status = structured(await client.call_tool("live_tracer_status", {}))
        out["status"] = status

        progress = []

        async def on_progress(value, total, message):
            progress.append({"progress": value, "total": total, "message": message})

        started = time.monotonic()
        report = structured(await client.call_tool(
            "live_network_report", {"durationSeconds": REPORT_SECONDS}, progress_callback=on_progress))
        report["progress"] = progress
        report["elapsed_s"] = time.monotonic() - started
        out["report"] = report
        s = report["structured"] or {}
        say(f"tools/call live_network_report {{durationSeconds: {REPORT_SECONDS}}} -> "
            f"{len(progress)} progress notifications; root_cause={s.get('root_cause')} "
            f"failure_layer={s.get('failure_layer')} evidence[0]={(s.get('evidence') or [{}])[0]}")

        # Cancel mid-window: the caller gives up after CANCEL_AFTER s; the SDK sends
        # notifications/cancelled; the server judges the shortened window and keeps it.
        cancel_progress = []

        async def on_cancel_progress(value, total, message):
            cancel_progress.append(value)

        started = time.monotonic()
        cancelled = True
        with anyio.move_on_after(CANCEL_AFTER):
            await client.call_tool("live_network_report", {"durationSeconds": 30},
                                   progress_callback=on_cancel_progress)
            cancelled = False
        await anyio.sleep(2.5)
        last = structured(await client.call_tool("live_network_verdict", {"lastReport": True}))
        last["cancelled"] = cancelled
        last["progress"] = len(cancel_progress)
        last["elapsed_s"] = time.monotonic() - started
        out["cancel"] = last
        s = last["structured"] or {}
        say(f"cancel after {CANCEL_AFTER}s, then live_network_verdict {{lastReport: true}} -> "
            f"root_cause={s.get('root_cause')} window_seconds={s.get('window_seconds')} notes={s.get('notes')}")

        verdict = structured(await client.call_tool("live_network_verdict", {"windowSeconds": 5}))
        out["verdict"] = verdict

        out["errors"] = {}
        for name, tool, args in [
            ("window0", "live_network_verdict", {"windowSeconds": 0}),
            ("window10000", "live_network_verdict", {"windowSeconds": 10000}),
            ("unknown_pod", "live_network_verdict", {"pod": "no-such-namespace/no-such-pod"}),
            ("report61", "live_network_report", {"durationSeconds": 61}),
        ]:
            r = structured(await client.call_tool(tool, args))
            out["errors"][name] = r
            say(f"tools/call {tool} {json.dumps(args)} -> isError={r['is_error']}: {r['text']}")

        out["flows"] = structured(await client.call_tool("live_tcp_flows", {"maxRows": 5}))
        out["facts"] = structured(await client.call_tool("live_node_facts", {"maxRows": 5}))
        if sidecar:
            out["compare"] = structured(await client.call_tool(
                "live_compare_nodes",
                {"affected": sidecar, "healthy": sidecar.replace("127.0.0.1", "localhost"), "windowSeconds": 10}))
            out["compare_same"] = structured(await client.call_tool(
                "live_compare_nodes", {"affected": sidecar, "healthy": sidecar}))
            out["cluster"] = structured(await client.call_tool(
                "live_cluster_health", {"endpoints": [sidecar], "windowSeconds": 10}))
            out["cluster_empty"] = structured(await client.call_tool(
                "live_cluster_health", {"endpoints": []}))
            say(f"tools/call live_cluster_health {{endpoints: [{sidecar}]}} -> "
                f"{(out['cluster']['structured'] or {}).get('result', {}).get('scope')}")
    return out


def main():
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "stdio":
        target = StdioServerParameters(command=where, args=["mcp", *sys.argv[3:]])
    else:
        target = where
    sidecar = sys.argv[3] if mode == "http" and len(sys.argv) > 3 else None
    out = anyio.run(scenario, target, sidecar)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
