"""A LangGraph agent whose tools are a Hearth session's, loaded over MCP.

`langchain-mcp-adapters` turns the session's MCP endpoint (`/v1/sessions/{id}/mcp`) into LangChain
tools; a prebuilt ReAct agent uses them. Offline by default: a scripted model writes a program,
runs it on the worker and reads the answer back, so the example (and its test) need no API key.

    python agent.py http://127.0.0.1:8700 <session token or the worker's> <session id>
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from langchain_core.messages import AIMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.prebuilt import create_react_agent

from hearth_client.testing import ScriptedChatModel, tool_calls

PROGRAM = "print(sum(range(10)))\n"


def scripted_model() -> ScriptedChatModel:
    return ScriptedChatModel(
        turns=[
            tool_calls(("write_file", {"file_path": "/workspace/sum.py", "content": PROGRAM})),
            tool_calls(("execute", {"command": "python3 sum.py"})),
            AIMessage(content="The sum is 45."),
        ]
    )


async def run(url: str, token: str, session: str, model: Any = None) -> dict[str, Any]:
    """Runs the agent against `session`; returns the graph's final state."""
    client = MultiServerMCPClient(
        {
            "hearth": {
                "transport": "streamable_http",
                "url": f"{url}/v1/sessions/{session}/mcp",
                "headers": {"Authorization": f"Bearer {token}"},
            }
        }
    )
    tools = await client.get_tools()
    agent = create_react_agent(model or scripted_model(), tools)
    state: dict[str, Any] = await agent.ainvoke({"messages": [("user", "Sum 0..9 with a program on the worker.")]})
    return state


if __name__ == "__main__":
    final = asyncio.run(run(*sys.argv[1:4]))
    print(final["messages"][-1].content)
