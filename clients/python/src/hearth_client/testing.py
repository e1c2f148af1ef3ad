"""`ScriptedChatModel`: a chat model that answers from a script, to run a graph offline.

A deepagents or LangGraph program needs a model to drive its tools. In tests (and in the offline
mode of `examples/`) this one plays the model: each turn it returns the next scripted `AIMessage`
(usually with tool calls), or calls the next scripted function with the conversation so far, so
a turn can depend on what the tools answered. It records every conversation it was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

Turn = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class ScriptExhausted(RuntimeError):
    """The graph asked the model for more turns than the script has."""


class ScriptedChatModel(BaseChatModel):
    turns: list[Any] = Field(default_factory=list)
    """`AIMessage`s, or functions of the conversation returning one."""
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    """Every conversation the model was shown, in order."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """The script already names its tool calls; binding changes nothing."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if len(self.seen) >= len(self.turns):
            raise ScriptExhausted(f"the script has {len(self.turns)} turns; the graph asked for another")
        turn = self.turns[len(self.seen)]
        self.seen.append(list(messages))
        message = turn(list(messages)) if callable(turn) else turn
        return ChatResult(generations=[ChatGeneration(message=message)])


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """A model turn that calls these tools, in order: `tool_calls(("ls", {"path": "/workspace"}))`."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call-{i}-{name}"} for i, (name, args) in enumerate(calls)],
    )
