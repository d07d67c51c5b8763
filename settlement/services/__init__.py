"""The writes of settlement: clearing, periods and their lock, reconciliation, finance files.

Importing the package registers the approval actions of its modules.
"""

from settlement.services import exports, reconciliation  # noqa: F401
from settlement.services.clearing import *  # noqa: F401,F403
from settlement.services.periods import *  # noqa: F401,F403
