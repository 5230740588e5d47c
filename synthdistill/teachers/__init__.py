"""The teaching side: the engine every teacher call goes through, and the backends it wraps.

How one call flows::

    stage ─> Engine.map ─> call cache ─> budget, slot, rate limit ─> Backend.complete ─> the model
             engine.py     cache.py      costs.py slots.py limits.py   openai.py, litellm.py, local.py

- The engine is the one door stages use; they never call a backend. `build_engine` (engine.py) turns a
  pipeline's `TeacherConfig` into an `Engine`, which caches, bounds, retries, hedges and counts every
  call (cache.py, slots.py, limits.py, hedging.py, costs.py, counters.py) on an asyncio loop in a
  background thread (loop.py), so stages stay synchronous.
- A backend speaks to one kind of model through the small async interface in base.py: a `Request` in,
  a `Response` out. Backends are found by name through the registry (synthdistill/registry.py), which
  reads the entry-point group `synthdistill.teachers` in pyproject.toml; the built-ins are declared there
  exactly as a plugin declares its own:

  - `openai` (openai.py; HTTP in http.py, batch jobs in batch.py): OpenAI and OpenAI-compatible servers.
  - `litellm` (litellm.py): every other hosted provider, through litellm.
  - `transformers` (local.py): a local model, generating in batches in a worker thread.

  The openai and litellm backends share the chat-completions protocol's helpers (chat.py).
"""
