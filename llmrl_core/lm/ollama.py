"""An Ollama Modelfile for a GGUF file: FROM, TEMPLATE (the chat template in Go template syntax), stop tokens.

Ollama renders prompts with Go's text/template over `.Messages` (Role, Content), not with Jinja, so
the tokenizer's chat template has to be translated. A general Jinja -> Go translator does not exist;
what most chat templates do is wrap each message in a role-specific prefix and suffix and end with a
generation prompt (ChatML as in SmolLM2, Llama 3, Zephyr). We find those pieces by rendering the
Jinja template itself on probe messages and taking the differences, then write them as one Go
`range` over the messages. A template that does not decompose that way (it rewrites content, or a
message's wrapping depends on its neighbours) is refused: the check re-renders a two-turn chat both
ways and compares.

A default system prompt the Jinja template inserts when there is none (SmolLM2's "You are a helpful
AI assistant named SmolLM...") becomes the Modelfile's SYSTEM line, which Ollama puts in .Messages as
a system message when the chat has none -- the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrl_core.core.errors import InputError

_PROBES = {"system": "\x01SYSTEM\x01", "user": "\x01USER\x01", "assistant": "\x01ASSISTANT\x01"}


@dataclass(frozen=True)
class ChatWrapping:
    """How a chat template wraps each role's message: prefix + content + suffix, then the generation prompt."""

    prefixes: dict[str, str]
    suffixes: dict[str, str]
    generation_prompt: str
    default_system: str | None  # what the template puts in when the chat has no system message


def _render(tokenizer: Any, messages: list[dict], generation: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _strip_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise InputError(f"The chat template does not render messages independently ({what}), so it cannot be "
                         "written as an Ollama TEMPLATE; write the Modelfile's TEMPLATE by hand.")
    return text[len(prefix):]


def _split(part: str, probe: str, role: str) -> tuple[str, str]:
    if part.count(probe) != 1:
        raise InputError(f"The chat template changes the {role} message's text, so it cannot be written as an "
                         "Ollama TEMPLATE; write the Modelfile's TEMPLATE by hand.")
    prefix, suffix = part.split(probe)
    return prefix, suffix


def find_chat_wrapping(tokenizer: Any) -> ChatWrapping:
    """The per-role prefix/suffix, generation prompt and default system prompt of the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("This model's tokenizer has no chat template, so there is no Ollama TEMPLATE to write.")
    system = {"role": "system", "content": _PROBES["system"]}
    user = {"role": "user", "content": _PROBES["user"]}
    assistant = {"role": "assistant", "content": _PROBES["assistant"]}
    only_system = _render(tokenizer, [system])
    sys_prefix, sys_suffix = _split(only_system, _PROBES["system"], "system")
    with_user = _render(tokenizer, [system, user])
    user_part = _strip_prefix(with_user, only_system, "user after system")
    user_prefix, user_suffix = _split(user_part, _PROBES["user"], "user")
    with_assistant = _render(tokenizer, [system, user, assistant])
    assistant_part = _strip_prefix(with_assistant, with_user, "assistant after user")
    assistant_prefix, assistant_suffix = _split(assistant_part, _PROBES["assistant"], "assistant")
    generation = _strip_prefix(_render(tokenizer, [system, user], generation=True), with_user, "generation prompt")
    no_system = _render(tokenizer, [user])
    default_system = None
    if not no_system.startswith(user_prefix) and no_system.startswith(sys_prefix):
        inserted = no_system[len(sys_prefix):].split(sys_suffix + user_prefix, 1)
        default_system = inserted[0] if len(inserted) == 2 else None
    return ChatWrapping(
        prefixes={"system": sys_prefix, "user": user_prefix, "assistant": assistant_prefix},
        suffixes={"system": sys_suffix, "user": user_suffix, "assistant": assistant_suffix},
        generation_prompt=generation, default_system=default_system)


def _go_literal(text: str) -> str:
    """Text placed literally in a Go template (refusing the delimiters, which would need escaping)."""
    if "{{" in text or "}}" in text:
        raise InputError("The chat template's markup contains '{{' or '}}', which cannot go literally into an "
                         "Ollama TEMPLATE; write it by hand.")
    return text


def make_go_template(wrapping: ChatWrapping) -> str:
    """The Ollama TEMPLATE: each message wrapped by role, then the generation prompt.

    No whitespace-trimming markers ({{- -}}): the wrappings' newlines are part of the prompt. The
    generation prompt always follows, as Ollama renders a template only to ask for the next answer.
    """
    branches = []
    for index, role in enumerate(("system", "user", "assistant")):
        keyword = "if" if index == 0 else "else if"
        branches.append(f'{{{{ {keyword} eq .Role "{role}" }}}}{_go_literal(wrapping.prefixes[role])}'
                        f'{{{{ .Content }}}}{_go_literal(wrapping.suffixes[role])}')
    return ("{{ range .Messages }}" + "".join(branches) + "{{ end }}{{ end }}"
            + _go_literal(wrapping.generation_prompt))


def find_stop_tokens(tokenizer: Any, wrapping: ChatWrapping) -> list[str]:
    """The special tokens that end an answer or open the next turn (Ollama's PARAMETER stop)."""
    special = [t for t in tokenizer.all_special_tokens if t]
    special += [str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False)]
    markup = wrapping.suffixes["assistant"] + wrapping.prefixes["user"]
    stops = [t for t in dict.fromkeys(special) if t in markup]
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def _quote(text: str) -> str:
    if '"""' in text:
        raise InputError('The text contains """, which a Modelfile cannot quote; edit the Modelfile by hand.')
    return f'"""{text}"""'


def make_modelfile(gguf_name: str, tokenizer: Any) -> str:
    """The Modelfile text for `gguf_name` (a file name beside the Modelfile)."""
    wrapping = find_chat_wrapping(tokenizer)
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quote(make_go_template(wrapping))}"]
    if wrapping.default_system:
        lines.append(f"SYSTEM {_quote(wrapping.default_system)}")
    for stop in find_stop_tokens(tokenizer, wrapping):
        lines.append(f'PARAMETER stop "{stop}"')
    return "\n".join(lines) + "\n"
