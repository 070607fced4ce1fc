"""Command line: `python -m workbench bench [--json PATH]` (the same as `python -m benchmarks`);
the teaching model: `python -m workbench.toy`."""
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m workbench bench [--json PATH] [--shapes musicgen-small,tiny] ...\n"
              "       python -m workbench.toy {train,evaluate}   (the teaching model)")
        return 0
    if argv[0] == "bench":
        try:  # benchmarks live beside the library, not in it
            from benchmarks.bench import main as bench_main
        except ImportError:
            print("the benchmarks are not installed: run `python -m benchmarks` from a clone of the repository",
                  file=sys.stderr)
            return 2
        return bench_main(argv[1:])
    print(f"unknown command {argv[0]!r}: try `python -m workbench bench`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
