"""Re-indexing in the app: questions keep their answers from the old index until the new one is whole."""

import threading

from conftest import SEEDS


def test_questions_use_the_old_index_until_the_new_one_is_complete(tmp_path, seed_assistant):
    from ui.app import App
    from ui.library import Library

    store = Library(tmp_path, [SEEDS])
    app = App(seed_assistant, store)
    upload = tmp_path / "incoming.md"
    upload.write_text("# Lighthouses\n\nThe Skerryvore lamp was first lit in 1844.\n")
    store.add_upload(upload, "lighthouse.md")

    building, release = threading.Event(), threading.Event()

    def paused_progress(value, desc=""):
        if desc == "embedding":  # the new index is half built: hold it there
            building.set()
            release.wait(timeout=120)

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("message", app.reindex(paused_progress)))
    worker.start()
    assert building.wait(timeout=120), "the re-index never started embedding"

    during = app.ask_json("When was the Skerryvore lamp first lit?")
    assert all(q["doc"] == "000_70eb0d637448346e.txt" for q in during["quotes"])
    assert app.ask_json("What did the foreign minister urge?")["answered"]

    release.set()
    worker.join(timeout=300)
    assert "Questions now use this corpus" in result["message"]
    after = app.ask_json("When was the Skerryvore lamp first lit?")
    assert after["answered"] and after["quotes"][0]["text"] == "The Skerryvore lamp was first lit in 1844."


def test_a_damaged_index_is_rebuilt_by_the_app_and_it_says_so(tmp_path, seed_assistant):
    from ui.app import App
    from ui.library import Library

    from qa import Assistant

    data = tmp_path / "data"
    library = Library(data, [SEEDS])
    assistant = Assistant(library.files(), data_dir=data, rebuild="stale", corpus=library.corpus).load()
    (assistant.index_dir / "dense.faiss").write_bytes(b"")
    app = App(assistant, library)
    message = app.reindex(lambda value, desc="": None)
    assert "damaged and has been rebuilt" in message and "dense.faiss" in message
    assert app.ask_json("Where were the North Korean soldiers captured?")["quotes"][0]["text"].startswith(
        "Ukraine has claimed")


def test_an_upload_embeds_only_itself_and_leaves_no_old_index(tmp_path, seed_assistant):
    """The app's corpus keeps one index, or one Milvus collection, however its files change."""
    from ui.app import App
    from ui.library import Library

    from qa import Assistant

    for store in (None, f"milvus:{tmp_path / 'store.db'}"):
        data = tmp_path / ("milvus" if store else "local")
        library = Library(data, [SEEDS])
        app = App(Assistant(library.files(), data_dir=data, rebuild="stale", store=store,
                            corpus=library.corpus).load(), library)
        upload = tmp_path / "incoming.md"
        upload.write_text("# Lighthouses\n\nThe Skerryvore lamp was first lit in 1844.\n")
        library.add_upload(upload, "lighthouse.md")
        assert "Questions now use this corpus" in app.reindex(lambda value, desc="": None)
        _, new = app.holder.current()
        assert new.embedded == 1, store  # the upload's one sentence; the seed's come from the index
        assert app.ask_json("When was the Skerryvore lamp first lit?")["quotes"][0]["text"].endswith("1844.")
        if store is None:
            assert len([p for p in (data / "indexes").iterdir() if not p.name.startswith(".")]) == 1


def test_a_folder_with_a_bad_file_opens_in_the_app_and_its_documents_tab_names_the_file(tmp_path, data_dir):
    from ui.app import App
    from ui.library import Library

    from qa import Assistant

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "review.txt").write_bytes("The caf\u00e9 grinder is quiet \u2013 and fast.\r\n".encode("cp1252"))
    (folder / "bad.txt").write_bytes(bytes(range(256)) * 16)
    library = Library(tmp_path / "data", [folder])
    assistant = Assistant(library.files(), data_dir=data_dir, rebuild="stale", corpus=library.corpus).load()
    app = App(assistant, library)
    table, _ = app.documents_view()
    assert "<td>cp1252</td>" in table and "Not indexed" in table and "bad.txt: not text in any encoding" in table
    assert app.ask_json("Is the grinder quiet?")["quotes"][0]["text"] == "The caf\u00e9 grinder is quiet \u2013 and fast."
    assert "Skipped 1 file(s) that could not be read" in app.reindex(lambda *a, **k: None)
