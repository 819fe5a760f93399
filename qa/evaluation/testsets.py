"""Test sets: the JSONL of questions, and SQuAD's per-article files, read into ``TestItem``s."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .squad_scores import normalize_answer


class TestSetError(ValueError):
    """A test-set file cannot be used; the message names the file and line."""

    __test__ = False  # not a pytest class

@dataclass(frozen=True)
class TestItem:
    """One question of a test set."""

    __test__ = False

    id: str
    question: str
    answers: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    docs: tuple[Path, ...] | None = None  # None: the corpus given to the command
    # SQuAD: gold character spans (doc id, start, end); a quote is correct when it covers one.
    spans: tuple[tuple[str, int, int], ...] = ()
    unanswerable: bool = field(default=False)

    @property
    def answerable(self) -> bool:
        return not self.unanswerable


def _read_lines(path: Path, kind: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TestSetError(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TestSetError(f"{path}: cannot be read ({exc})") from None


def read_testset(path: str | Path, limit: int | None = None) -> list[TestItem]:
    """Questions of a JSONL test set, in file order (the first ``limit`` of them)."""
    path = Path(path)
    lines = _read_lines(path, "test-set")
    items: list[TestItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        item = _parse_line(path, n, line)
        if item.id in seen:
            raise TestSetError(f"{path}:{n}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _parse_line(path: Path, n: int, line: str) -> TestItem:
    where = f"{path}:{n}"
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise TestSetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise TestSetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TestSetError(f'{where}: missing "question" (a non-empty string)')
    answers = row.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise TestSetError(f'{where}: "answers" must be a list of strings ([] when the documents do not answer)')
    if any(not normalize_answer(a) for a in answers):
        raise TestSetError(f'{where}: an answer in "answers" is empty once punctuation and articles are removed')
    history = row.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise TestSetError(f'{where}: "history" must be a list of earlier questions (strings)')
    docs = row.get("docs")
    if docs is not None:
        if isinstance(docs, str):
            docs = [docs]
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            raise TestSetError(f'{where}: "docs" must be a list of file or folder paths')
        docs = tuple((path.parent / d).resolve() for d in docs)
    qid = row.get("id", f"line{n}")
    return TestItem(id=str(qid), question=question.strip(), answers=tuple(answers), history=tuple(history),
                    docs=docs, unanswerable=not answers)


def read_squad(path: str | Path, folder: str | Path, limit: int | None = None) -> list[TestItem]:
    """Questions of a per-article SQuAD JSONL file; each article is written to ``folder/<title>.txt``.

    The article's paragraphs are joined by blank lines, so a gold answer at
    ``answer_start`` of paragraph ``p`` sits at ``offset(p) + answer_start``.
    Files are rewritten only when their text changes, so indexes stay cached.
    """
    path, folder = Path(path), Path(folder)
    lines = _read_lines(path, "SQuAD")
    items: list[TestItem] = []
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            article = json.loads(line)
            title, paragraphs, qas = article["title"], article["paragraphs"], article["qas"]
        except ValueError as exc:
            raise TestSetError(f"{where}: not valid JSON ({exc})") from None
        except (KeyError, TypeError):
            raise TestSetError(f'{where}: expected an article {{"title", "paragraphs", "qas"}}') from None
        offsets, pos = [], 0
        for p in paragraphs:
            offsets.append(pos)
            pos += len(p) + 2
        text = "\n\n".join(paragraphs) + "\n"
        doc_path = folder / f"{_safe_name(title) or f'article{n}'}.txt"
        _write_if_changed(doc_path, text)
        for qa in qas:
            if limit is not None and len(items) >= limit:
                break
            items.append(_squad_item(where, qa, doc_path, paragraphs, offsets))
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _squad_item(where: str, qa, doc_path: Path, paragraphs: list[str], offsets: list[int]) -> TestItem:
    try:
        spans = []
        for a in qa["answers"]:
            p, s = a["paragraph"], a["answer_start"]
            if paragraphs[p][s:s + len(a["text"])] != a["text"]:
                raise TestSetError(f"{where}: question {qa['id']}: answer {a['text']!r} is not at "
                                   f"paragraph {p}, offset {s}")
            spans.append((doc_path.name, offsets[p] + s, offsets[p] + s + len(a["text"])))
        return TestItem(id=str(qa["id"]), question=qa["question"].strip(),
                        answers=tuple(a["text"] for a in qa["answers"]), docs=(doc_path.resolve(),),
                        spans=tuple(spans), unanswerable=bool(qa.get("is_impossible")) or not qa["answers"])
    except (KeyError, TypeError, IndexError, AttributeError):
        qid = qa.get("id", "?") if isinstance(qa, dict) else "?"
        raise TestSetError(f"{where}: question {qid} is malformed (needs id, question, and answers "
                           f"with text, paragraph and answer_start)") from None


def _safe_name(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in title).strip("._")[:80]


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
