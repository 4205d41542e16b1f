"""Research at scale: parameter search, walk-forward validation, overfitting statistics, the
learning loop and its proposals.

* :mod:`~tradeloop.optimize.space` — ``--param`` specifications checked against a strategy;
* :mod:`~tradeloop.optimize.objective` — objectives and constraints;
* :mod:`~tradeloop.optimize.evaluate` — one trial on data loaded once (shared read-only);
* :mod:`~tradeloop.optimize.fast_sma` — the vectorized SMA-crossover kernel (numba);
* :mod:`~tradeloop.optimize.backends` — serial, process pool and Ray;
* :mod:`~tradeloop.optimize.study` — resumable optuna studies (grid, random, TPE);
* :mod:`~tradeloop.optimize.walkforward` — rolling and anchored walk-forward;
* :mod:`~tradeloop.optimize.overfitting` — PBO (CSCV) and combinatorial purged CV;
* :mod:`~tradeloop.optimize.service` — the ``tradeloop optimize`` job;
* :mod:`~tradeloop.optimize.report` — the HTML report;
* :mod:`~tradeloop.optimize.learn` — signal journal, per-strategy report, proposals.
"""
