"""Test sets: the JSONL of questions, and SQuAD's per-article files, read into ``TestItem``s."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..store.index import default_data_dir
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


def read_testset(path: str | Path, limit: int | None = None, squad_dir: str | Path | None = None) -> list[TestItem]:
    """Questions of a JSONL test set, in file order (the first ``limit`` of them).

    A line's ``"squad"`` article is written under ``squad_dir`` (default
    ``<data dir>/squad``) as ``--squad`` writes it, in a folder named after the file.
    """
    path = Path(path)
    lines = _read_lines(path, "test-set")
    articles = _SquadArticles(Path(squad_dir) if squad_dir is not None else None)
    items: list[TestItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        item = _parse_line(path, n, line, articles)
        if item.id in seen:
            raise TestSetError(f"{path}:{n}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _parse_line(path: Path, n: int, line: str, articles: "_SquadArticles") -> TestItem:
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
    if "squad" in row:
        if docs is not None:
            raise TestSetError(f'{where}: give either "docs" or "squad", not both')
        docs = (articles.document(where, path.parent, row["squad"], answers),)
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
    items: list[TestItem] = []
    for n, where, title, paragraphs, qas in _articles(path):
        if limit is not None and len(items) >= limit:
            break
        doc_path, offsets = _write_article(folder, title, paragraphs, n)
        for qa in qas:
            if limit is not None and len(items) >= limit:
                break
            items.append(_squad_item(where, qa, doc_path, paragraphs, offsets))
    if not items:
        raise TestSetError(f"{path}: holds no questions")
    return items


def _articles(path: Path):
    """(line number, "file:line", title, paragraphs, qas) of each article of a SQuAD file."""
    for n, line in enumerate(_read_lines(path, "SQuAD"), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            article = json.loads(line)
            yield n, where, article["title"], article["paragraphs"], article["qas"]
        except ValueError as exc:
            raise TestSetError(f"{where}: not valid JSON ({exc})") from None
        except (KeyError, TypeError):
            raise TestSetError(f'{where}: expected an article {{"title", "paragraphs", "qas"}}') from None


def _write_article(folder: Path, title: str, paragraphs: list[str], n: int) -> tuple[Path, list[int]]:
    """The article as one document, its paragraphs joined by blank lines, and each paragraph's offset."""
    offsets, pos = [], 0
    for p in paragraphs:
        offsets.append(pos)
        pos += len(p) + 2
    doc_path = folder / f"{_safe_name(title) or f'article{n}'}.txt"
    _write_if_changed(doc_path, "\n\n".join(paragraphs) + "\n")
    return doc_path, offsets


class _SquadArticles:
    """The SQuAD articles test-set lines name (``"squad": {"file", "title"}``), each file read once."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.files: dict[Path, dict[str, tuple[int, list[str]]]] = {}

    def document(self, where: str, base: Path, spec, answers: list[str]) -> Path:
        """The article's document (written as ``read_squad`` writes it), after checking the answers are in it."""
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("file", "title")):
            raise TestSetError(f'{where}: "squad" must be {{"file": "path/to/squad.jsonl" (relative to the '
                               f'test set), "title": "an article title"}}')
        file = (base / spec["file"]).resolve()
        if file not in self.files:
            if not file.is_file():
                raise TestSetError(f'{where}: "squad" file {spec["file"]} not found (looked for {file}; '
                                   f'the path is relative to the test set)')
            self.files[file] = {title: (n, paragraphs) for n, _, title, paragraphs, _ in _articles(file)}
        titles = self.files[file]
        if spec["title"] not in titles:
            close = difflib.get_close_matches(spec["title"], titles, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its titles: {', '.join(sorted(titles))}"
            raise TestSetError(f'{where}: no article titled {spec["title"]!r} in {spec["file"]}: {hint}')
        n, paragraphs = titles[spec["title"]]
        text = "\n\n".join(paragraphs)
        for a in answers:
            if a not in text:
                raise TestSetError(f'{where}: answer {a!r} is not in article {spec["title"]!r} word for word: '
                                   f'copy it from the article')
        folder = (self.folder if self.folder is not None else default_data_dir() / "squad") / file.stem
        return _write_article(folder, spec["title"], paragraphs, n)[0].resolve()


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
