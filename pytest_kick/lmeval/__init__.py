"""Gating the lm-evaluation-harness runs a team already has (``--kick-from-lmeval DENSE_DIR,COMPRESSED_DIR``).

lm-eval's ``--output_path DIR --log_samples`` writes ``results_<time>.json`` (versions, few-shot counts, the
limit, per-metric directions) and one ``samples_<task>_<time>.jsonl`` per task (per document: its
``doc_id``, hashes of the document, prompt and target, the arguments and responses, and every per-item
metric). ``runs.py`` reads two such directories and pairs them; ``task.py`` makes each task present in both
a pytest-kick task (``lmeval:<task>``) whose items are the documents and whose "run" reads the stored
per-item metric of the side being evaluated; ``engine.py`` is the engine entry ``lmeval`` whose two
"models" are the two runs; ``session.py`` wires them into a session. Nothing is evaluated again.
"""
