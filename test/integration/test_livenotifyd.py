#!/usr/bin/python3
"""End-to-end tests of livenotifyd: a private cluster, real daemons, real WebSocket clients.

Started by test/integration/run.sh, which creates the cluster, the database with the
Django-shaped api_notification table (registered with livenotify.register) and passes
everything on the command line.  This file starts and stops the daemons itself, because
some tests need particular settings or kill them.

Every expectation comes from docs/protocol.md, docs/sql-api.md and `livenotifyd --help`.  Each test prints
`ok NAME` or `FAILED NAME: why`; the last line is `N passed, N failed`.

To keep tests from disturbing one another, each test uses its own user ids, so frames of
another test can never be mistaken for its own.  "Nothing else arrived" is checked with a
marker: an ephemeral `test_marker` frame sent after the operations under test.  The queue is
ordered, so any frame the daemon wrongly delivered would reach the tab before the marker;
this avoids fixed sleeps.

The tests are in one module per concern; lntest.py has what they share.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lntest  # noqa: E402

# Registration order is run order.
import test_delivery  # noqa: E402,F401
import test_resume  # noqa: E402,F401
import test_admission  # noqa: E402,F401
import test_protocol  # noqa: E402,F401
import test_backpressure  # noqa: E402,F401
import test_control  # noqa: E402,F401
import test_health  # noqa: E402,F401
import test_database  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(lntest.main())
