"""Report formats: each module renders a ``stuck.model.Report`` and nothing else.

``text`` and ``json`` use only the standard library, so a live process can write them without
importing anything heavy. So does ``html``, which a live process writes too
(``stuck run --html``); its graph is laid out by Graphviz's ``dot``, run as a child process.
"""
