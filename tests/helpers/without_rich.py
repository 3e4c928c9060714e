"""pytest plugin for ``make mutation`` (``-p tests.helpers.without_rich``): Lightning as in the project's environment.

mutmut's own terminal UI needs ``rich``, and where ``rich`` can be imported Lightning replaces its default
``TQDMProgressBar`` and ``ModelSummary`` with Rich ones. The project's environment (``make test``, CI) has no
``rich``; this plugin makes Lightning choose as it does there, so the mutation run tests the same behaviour.
"""

import pytorch_lightning.trainer.connectors.callback_connector as callback_connector

callback_connector._RICH_AVAILABLE = False
