"""`python -m benchmarks [--json PATH] ...`: the workbench benchmark (see benchmarks.bench);
`python -m benchmarks map [--browser]`: the map's redraw after a colour-by change (benchmarks.bench_map);
`python -m benchmarks kernel`: the kernel's decode loop over transformers' generate (benchmarks.bench_kernel);
`python -m benchmarks compiled`: the compiled kernel beside the eager one and generate (benchmarks.bench_compiled);
`python -m benchmarks roofline`: a musicgen-small decoder step over the memory roofline (benchmarks.bench_roofline)."""
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["map"]:
        from benchmarks.bench_map import main as map_main
        sys.exit(map_main(sys.argv[2:]))
    if sys.argv[1:2] == ["kernel"]:
        from benchmarks.bench_kernel import main as kernel_main
        sys.exit(kernel_main(sys.argv[2:]))
    if sys.argv[1:2] == ["compiled"]:
        from benchmarks.bench_compiled import main as compiled_main
        sys.exit(compiled_main(sys.argv[2:]))
    if sys.argv[1:2] == ["roofline"]:
        from benchmarks.bench_roofline import main as roofline_main
        sys.exit(roofline_main(sys.argv[2:]))
    from benchmarks.bench import main
    sys.exit(main())
