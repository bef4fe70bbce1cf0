"""Prompt sets for RL fine-tuning: built-in sets, files (.csv, .jsonl, .json, .txt) and HF datasets.

Every source becomes a DataFrame with a `prompt` column (str) plus any extra columns, which
are handed to the reward functions as keyword lists (TRL's convention), e.g. `answer` for
the exact-answer reward. Uploads are checked strictly and each problem gets a message that
says what to change.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pandas as pd

from llmrl_core.core.errors import InputError

MAX_UPLOAD_BYTES = 50 * 2**20  # a prompt file larger than 50 MB is almost certainly a mistake
FILE_TYPES = (".csv", ".jsonl", ".json", ".txt")
ARITHMETIC_SIZE = 200  # problems generated for the arithmetic set
# Reward functions receive these as keywords next to the extra columns (TRL's convention), so no column may use them.
RESERVED_COLUMNS = ("prompts", "completions", "completion_ids", "trainer_state")

_SENTENCE_STARTERS = [
    "The weather today", "My neighbour", "This morning I", "The new restaurant downtown", "Our team meeting",
    "The book I just finished", "My first day at work", "The city at night", "The train ride home",
    "Last weekend we", "The concert was", "My grandmother always", "The old house on the hill",
    "When I opened the letter", "The customer service", "The view from the window", "Our summer holiday",
    "The school play", "My new phone", "The football match", "The coffee in this place", "Yesterday's storm",
    "The museum exhibition", "Working from home", "The first snow of the year", "My best friend",
    "The movie we saw", "The traffic this morning", "The garden in spring", "Our new apartment",
    "The birthday party", "The hotel room", "The hiking trail", "The job interview", "My cat",
    "The food at the wedding", "The flight to Lisbon", "The neighbourhood park", "The science fair",
    "The last chapter", "The local bakery", "Monday mornings", "The village market", "The beach at sunset",
    "Learning to drive", "The new software update", "The dinner my brother cooked", "The bus driver",
    "Moving to a new city", "The final exam", "The music festival", "The library", "My morning run",
    "The doctor's appointment", "The road trip", "The sound of the rain",
]

_REVIEW_OPENERS = [
    "This movie", "I watched this film last night and", "The plot of this film", "The acting in this movie",
    "As a fan of the original, I", "The director's latest film", "I went into this movie expecting",
    "The soundtrack", "The special effects", "Two hours of my life", "This sequel", "The ending of this film",
    "My kids and I watched this and", "The lead actress", "For a low-budget film, this", "The dialogue",
    "I have seen this movie three times and", "Critics loved it, but I", "The cinematography",
    "This documentary", "This product", "I bought these headphones and", "The battery life",
    "After a month of using this blender, I", "The delivery was", "This coffee maker", "The build quality",
    "I ordered this jacket in blue and", "The instructions", "Compared to my old vacuum, this one",
    "This phone case", "The customer support team", "For the price, this", "The keyboard feels",
    "I gave this to my dad as a gift and", "This restaurant", "The hotel staff", "The app",
    "This board game", "The running shoes",
]

_CHAT_QUESTIONS = [
    "What is a good way to start learning to cook?", "How do I make my mornings less stressful?",
    "Can you suggest a name for a small bakery?", "What should I pack for a weekend hiking trip?",
    "How can I be a better listener?", "What is a fun activity for a rainy afternoon?",
    "How do plants make their own food?", "Why is the sky blue?", "What is a healthy snack I can make quickly?",
    "How do I keep a houseplant alive?", "What are some tips for a job interview?",
    "How can I save money on groceries?", "What is the difference between weather and climate?",
    "How do I write a polite email asking for a deadline extension?", "What is a good book for a long flight?",
    "How do I get better at remembering names?", "Why do cats purr?", "What makes a good team leader?",
    "How can I fall asleep faster?", "What is a simple way to explain gravity to a child?",
    "How do I start running if I have never exercised?", "What should I say to cheer up a friend?",
    "How does a rainbow form?", "What is a good gift for a coworker who is leaving?",
    "How do I make a budget?", "What are three ways to reduce plastic at home?",
    "How do I learn a new language on my own?", "What is the best way to study for an exam?",
    "How do I apologise to someone I upset?", "Why do leaves change colour in autumn?",
    "What is a good question to ask on a first date?", "How do I keep my desk tidy?",
    "What is a quick recipe for dinner tonight?", "How do bees make honey?",
    "How can I be more patient?", "What should I do on my first day at a new job?",
    "How do I politely decline an invitation?", "What is a good habit to start this year?",
    "How do I choose a good watermelon?", "What is a nice way to thank a teacher?",
]

BUILTIN_PROMPT_SETS: dict[str, str] = {
    "sentence-starters": f"{len(_SENTENCE_STARTERS)} open sentence starters (\"The weather today\") for sentiment steering.",
    "review-openers": f"{len(_REVIEW_OPENERS)} movie and product review openers, the classic positive-review task.",
    "arithmetic": f"{ARITHMETIC_SIZE} two-number + - × problems with an answer column, generated from the seed "
                  "(for the exact-answer reward).",
    "chat-questions": f"{len(_CHAT_QUESTIONS)} short everyday chat questions.",
}


# --------------------------------------------------------------------------- built-in sets


def make_arithmetic_problems(n: int = ARITHMETIC_SIZE, seed: int = 0) -> pd.DataFrame:
    """`n` distinct problems like 'What is 17 + 25? Answer with a number.' with their answers as text ('42')."""
    if not 1 <= n <= 10_000:
        raise InputError(f"The number of arithmetic problems must be between 1 and 10000 (got {n}).")
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        op = rng.choice("+-×")
        if op == "+":
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            answer = a + b
        elif op == "-":
            a, b = rng.randint(10, 99), rng.randint(2, 99)
            a, b = max(a, b), min(a, b)  # no negative answers
            answer = a - b
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 19)
            answer = a * b
        prompt = f"What is {a} {op} {b}? Answer with a number."
        if prompt not in seen:  # distinct problems; the space holds over 15,000
            seen.add(prompt)
            rows.append({"prompt": prompt, "answer": str(answer)})
    return pd.DataFrame(rows)


def _make_builtin(name: str, seed: int) -> pd.DataFrame:
    if name == "arithmetic":
        return make_arithmetic_problems(ARITHMETIC_SIZE, seed)
    lists = {"sentence-starters": _SENTENCE_STARTERS, "review-openers": _REVIEW_OPENERS,
             "chat-questions": _CHAT_QUESTIONS}
    return pd.DataFrame({"prompt": list(lists[name])})


# --------------------------------------------------------------------------- files


def _decode(filename: str, data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); InputError naming the first bad byte otherwise."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        raise InputError(
            f"{filename} is not UTF-8 text (byte 0x{bad} at position {err.start} cannot be decoded). "
            "Save the file as UTF-8 and upload it again."
        ) from None
    if "\x00" in text:
        raise InputError(f"{filename} looks like a binary file (it contains NUL bytes); upload a .csv, .jsonl or .txt text file.")
    return text


def _parse_csv(filename: str, text: str) -> pd.DataFrame:
    try:
        # Every cell as text: '007' and '42' stay as written, and nothing becomes NaN.
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{filename} is empty: it needs a header row with a prompt column and one row per prompt.") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{filename} is not a valid CSV file: {err}. Check quoting and the number of columns.") from None


def _parse_jsonl(filename: str, text: str) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except RecursionError:
            raise InputError(f"{filename}, line {number} is nested too deeply; each line must be one flat JSON object.") from None
        except json.JSONDecodeError as err:
            raise InputError(
                f"{filename}, line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                'each line must be one JSON object like {"prompt": "..."}.'
            ) from None
        if not isinstance(row, dict):
            raise InputError(
                f"{filename}, line {number} holds a JSON {type(row).__name__}, not an object; "
                'each line must be one JSON object like {"prompt": "..."}.'
            )
        if "prompt" not in row:
            shown = ", ".join(map(str, row)) or "none"
            raise InputError(f"{filename}, line {number} has no \"prompt\" field (it has: {shown}); add one to every line.")
        rows.append(row)
    return pd.DataFrame(rows)


def _parse_json(filename: str, text: str) -> pd.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{filename} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}).") from None
    except RecursionError:
        raise InputError(f'{filename} is nested too deeply; give a flat list of objects like [{{"prompt": "..."}}, ...].') from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
            raise InputError(f"{filename}: the columns have different lengths ({shown}); give every column one value per prompt.")
        data = pd.DataFrame(data).to_dict("records")  # column-oriented {"prompt": [...], ...}
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise InputError(f'{filename} must hold a JSON list of objects like [{{"prompt": "..."}}, ...].')
    return pd.DataFrame(data)


def _parse_txt(text: str) -> pd.DataFrame:
    return pd.DataFrame({"prompt": [line.strip() for line in text.splitlines() if line.strip()]})


def finalize_prompt_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Check a parsed frame: a `prompt` column of non-empty text, at least one row; return a clean copy."""
    frame = frame.rename(columns={c: c.strip() for c in frame.columns if isinstance(c, str)})
    repeated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise InputError(f"{what} has the column {repeated[0]!r} more than once; give each column a distinct name.")
    if "prompt" not in frame.columns:
        alike = [c for c in frame.columns if isinstance(c, str) and c.lower() == "prompt"]
        if alike:
            frame = frame.rename(columns={alike[0]: "prompt"})
    if "prompt" not in frame.columns:
        shown = ", ".join(map(str, frame.columns)) or "none"
        raise InputError(
            f"{what} has no prompt column (its columns are: {shown}). Name the column holding the prompts "
            "'prompt', or upload a .txt file with one prompt a line."
        )
    clashing = [c for c in frame.columns if c in RESERVED_COLUMNS]
    if clashing:
        raise InputError(
            f"{what} has a column named {clashing[0]!r}, which clashes with an argument every reward function "
            "receives; rename that column."
        )
    if frame.empty:
        raise InputError(f"{what} has no prompts: it needs at least one row.")
    prompts = frame["prompt"]
    not_text = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if not_text:
        i = not_text[0]
        raise InputError(
            f"{what}: the prompt in row {i + 1} is {type(prompts.iloc[i]).__name__}, not text "
            f"({len(not_text)} such rows). Give every prompt as a string; chat message lists are not supported here."
        )
    blank = [i for i, p in enumerate(prompts) if not p.strip()]
    if blank:
        rows = ", ".join(str(i + 1) for i in blank[:5]) + (" …" if len(blank) > 5 else "")
        raise InputError(f"{what}: {len(blank)} prompt(s) are empty (rows {rows}); fill them in or remove those rows.")
    cols = ["prompt"] + [c for c in frame.columns if c != "prompt"]
    return frame[cols].reset_index(drop=True)


def _check_size(filename: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InputError(
            f"{filename} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller sample of the prompts."
        )


def read_prompt_upload(filename: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> pd.DataFrame:
    """Parse an uploaded prompt file (from st.file_uploader) by its extension; InputError says what is wrong."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FILE_TYPES:
        raise InputError(f"{filename}: unsupported file type {suffix or '(none)'!r}; upload a .csv, .jsonl, .json or .txt file.")
    _check_size(filename, len(data), max_bytes)
    text = _decode(filename, data)
    if not text.strip():
        raise InputError(f"{filename} is empty; it needs at least one prompt.")
    if suffix == ".csv":
        frame = _parse_csv(filename, text)
    elif suffix == ".jsonl":
        frame = _parse_jsonl(filename, text)
    elif suffix == ".json":
        frame = _parse_json(filename, text)
    else:
        frame = _parse_txt(text)
    return finalize_prompt_frame(frame, filename)


# --------------------------------------------------------------------------- Hugging Face datasets


def _load_hf_dataset(spec: str) -> pd.DataFrame:
    """'<dataset id>[:split]' -> frame; fails within seconds when the hub is unreachable."""
    from llmrl_core.lm.models import check_hub_reachable

    dataset_id, _, split = spec.partition(":")
    dataset_id, split = dataset_id.strip(), (split.strip() or "train")
    if not dataset_id:
        raise InputError("Give a dataset id after hf:, e.g. hf:openai/gsm8k:train.")
    if not check_hub_reachable():
        raise InputError(
            f"Cannot load the Hugging Face dataset {dataset_id!r}: the hub is unreachable from this machine. "
            "Download it elsewhere as .csv or .jsonl and upload the file, or pick a built-in prompt set."
        )
    try:
        import datasets
    except ImportError as err:
        raise InputError("Loading Hugging Face datasets needs the datasets package: pip install datasets.") from err
    try:
        frame = datasets.load_dataset(dataset_id, split=split).to_pandas()
    except Exception as err:  # unknown id, config needed, missing split: the library's message is the best hint
        raise InputError(f"Cannot load the Hugging Face dataset {dataset_id!r} (split {split!r}): {err}") from err
    return finalize_prompt_frame(frame, f"The dataset {dataset_id}")


# --------------------------------------------------------------------------- entry point


def load_prompt_set(source: str, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Load prompts from a built-in name, a file path, or 'hf:<dataset id>[:split]'.

    `seed` generates the arithmetic set; with `limit`, a random sample of that many rows
    (drawn with `seed`, kept in the set's order) is returned.
    """
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"Choose a prompt set: one of {', '.join(BUILTIN_PROMPT_SETS)}, a file path, or hf:<dataset id>.")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"The prompt limit must be a whole number of at least 1, or none (got {limit!r}).")
    source = source.strip()
    if source in BUILTIN_PROMPT_SETS:
        frame = _make_builtin(source, seed)
    elif source.startswith("hf:"):
        frame = _load_hf_dataset(source[3:])
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(
                f"Unknown prompt set {source!r}: not a built-in set ({', '.join(BUILTIN_PROMPT_SETS)}), "
                "not an existing file, and not hf:<dataset id>."
            )
        _check_size(path.name, path.stat().st_size, MAX_UPLOAD_BYTES)  # before reading it into memory
        frame = read_prompt_upload(path.name, path.read_bytes())
    if limit is not None and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)
    return frame
