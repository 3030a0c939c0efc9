"""Analysis of the per-message metrics CSV (SPEC §2.5): statistics, charts, report, command.

Modules, imported on their own so that loading the client does not load matplotlib:
``performance_analyzer`` (PerformanceAnalyzer, AnalysisResult: the statistics),
``throughput_visualizer`` (ThroughputVisualizer: every chart, throughput, latency and
rooms alike), ``report`` (write_report and the tables every page shows), ``html_report``
(the HTML pages, on :mod:`chatflow.html_page`) and ``cli`` (the command). The file's columns
and statuses are ``chatflow.metrics``'s.
"""
