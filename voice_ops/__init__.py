"""The operator's side of voice-agent: the ``voice-agent`` CLI (``cli``), the embedded stack that runs
every service as a local process (``stack``), the scripted demo (``demo``) and the test speech that
the demo, the tests and the benchmarks speak (``samples``, and ``turn_sets`` for turn-taking).

It sits on top of everything else and may import every service and the gateway; nothing that a
service or the gateway runs imports it, and the shared package ``voice_agent`` never does.
"""
