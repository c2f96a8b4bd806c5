"""How an entry point that ran TensorFlow ends its process."""
import os
import sys
import traceback
from typing import Callable


def run_main(main: Callable[[], None]) -> None:
    """Runs an entry point's `main`, then ends the process without interpreter teardown, with the status
    it would have had: 0, a `SystemExit`'s code (its message printed), or 1 after an uncaught exception.

    Two native libraries abort in their static destructors at exit after correct work: TF 2.16's
    `AtomicFunction.__del__` raises at shutdown, and tensorflow-io 0.37.1's S3 file system calls a pure
    virtual method once S3 was used (status 134; tensorflow/io#2039, fixed upstream after 0.37.1, the
    last release for TF 2.16). Entry points that run TensorFlow end through this instead.
    """
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access
