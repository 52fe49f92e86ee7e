"""``python -m tests.lava_faults.cli FAULT ARGS...``: the spikeport CLI whose Lava runs use a faulty
child (for the CLI's supervision tests)."""
import sys

from spikeport.cli import main
from spikeport.deploy import supervise
from tests.lava_faults import child_args

if __name__ == "__main__":
    supervise.CHILD = child_args(sys.argv[1])
    sys.argv = ["spikeport", *sys.argv[2:]]
    main()
