"""A host program's code in several LLVM modules, compiled on every core while the driver still emits.

Kernels are independent functions, so a few at a time go into a module of
their own that is handed to an ``ObjectBatch`` as soon as it is full: worker
processes optimise it while the driver emits the next kernels (LLVM's
optimisation and code generation are nearly all of a cold compile, and one
module would keep them on one core). Each module's object is cached by its
content. A kernel whose code is identical to an earlier one's (up to the names
of the function and its buffers; EfficientNet-B0 repeats a quarter of its
kernels) is not compiled again: its steps call the earlier function. The JIT
entry point ``tosac_host_run`` then goes into a module of its
own that declares the kernels, so every kernel runs as the code compiled for
it (the code the tuner measured), not as a copy inlined into the entry point:
re-optimising the inlined copies cost a fifth of LLVM's time on
EfficientNet-B0 and did not make the model faster. A program that fits one
module (the tuner's candidates, small graphs) is compiled as one module with
its entry point, as before.
"""
from __future__ import annotations

import llvmlite.ir as ir

from tosac.pipeline.entry_point import HOST_ENTRY, add_entry_point, add_repeat_loop
from tosac.runtime.executable import KernelStep, Program
from tosac.runtime.objects import ObjectBatch, compile_object, linked_object
from tosac.schedules import loopnest as ln
from tosac.schedules.emit_llvm import I64, PTR, Emitter
from tosac.targets import Target

# A module is handed over when it holds this many kernels or instructions, whichever comes first: small enough
# that a batch ends evenly on two cores (a kernel takes ~50 ms in LLVM), large enough that per-module costs stay
# small. A program of at most SMALL_PROGRAM kernels is one module: two cores cannot win much on it.
KERNELS_PER_MODULE = 4
INSTRUCTIONS_PER_MODULE = 6000
SMALL_PROGRAM = 3 * KERNELS_PER_MODULE


class HostModules:
    """Emit kernels with ``emit``; ``finish`` adds the entry point and compiles the rest."""

    def __init__(self, target: Target):
        self.target = target
        self.batch = ObjectBatch(target)
        self.sources: list[str] = []
        self.kernels: list[str] = []                 # functions defined, in emission order
        self.aliases: dict[str, str] = {}            # kernel -> the identical function defined before it
        self._seen: dict[str, str] = {}              # canonical text -> function
        self._texts: dict[str, str] = {}             # function -> its text (formatted once)
        self._pending: list[ln.Kernel] | None = []   # held back until the program is known not to be small
        self._start_module()

    def _start_module(self) -> None:
        self.module = ir.Module(name="tosac")
        self.module.triple = self.target.triple
        self.emitter = Emitter(self.module, self.target.features)
        self._kernels = self._instructions = 0

    def emit(self, kernel: ln.Kernel) -> None:
        if self._pending is not None:
            self._pending.append(kernel)
            if len(self._pending) <= SMALL_PROGRAM:
                return
            pending, self._pending = self._pending, None
            for held in pending:
                self._emit_part(held)
        else:
            self._emit_part(kernel)

    def _emit_part(self, kernel: ln.Kernel) -> None:
        fn = self.emitter.emit_kernel(kernel)
        text = str(fn)
        key = _canonical(text, fn.name, [p.name for p in kernel.params])
        if key in self._seen:
            self.aliases[fn.name] = self._seen[key]
            del self.module.globals[fn.name]
            return
        self._seen[key] = fn.name
        self._texts[fn.name] = text
        self.kernels.append(fn.name)
        self._kernels += 1
        self._instructions += sum(len(block.instructions) for block in fn.blocks)
        if self._kernels >= KERNELS_PER_MODULE or self._instructions >= INSTRUCTIONS_PER_MODULE:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._kernels:
            # The module's text with each kernel as formatted once already (llvmlite formats on every str()).
            self.module.globals = type(self.module.globals)(
                (name, _Formatted(self._texts[name]) if name in self._texts else value)
                for name, value in self.module.globals.items())
            self._submit(str(self.module))
            self._start_module()

    def _submit(self, text: str) -> None:
        self.sources.append(text)
        self.batch.submit(text)

    def finish(self, program: Program, entry: bool) -> None:
        """Compile the rest, with the entry point when ``entry``: ``program.object_code`` for a program that fits
        one module (entry point included, as one object), else ``program.parts``."""
        if self._pending is not None:
            for kernel in self._pending:
                self.emitter.emit_kernel(kernel)
                self.kernels.append(kernel.name)
            if entry:
                self._add_entry(self.module, program)
            program.object_code = compile_object(str(self.module), self.target)
            return
        self._hand_over()
        for step in program.steps:
            if isinstance(step, KernelStep) and step.function in self.aliases:
                step.function = self.aliases[step.function]
        if entry:
            module = ir.Module(name="tosac")
            module.triple = self.target.triple
            for name in self.kernels:
                ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64]), name=name).attributes.add(
                    "nounwind")
            self._add_entry(module, program)
            self._submit(str(module))
        program.parts = self.batch.results()
        sources, target = list(self.sources), self.target
        program.link = lambda: linked_object(sources, target)

    @staticmethod
    def _add_entry(module: ir.Module, program: Program) -> None:
        add_entry_point(module, program, HOST_ENTRY, constants_table=True)   # one call per run, no Python per kernel
        add_repeat_loop(module, HOST_ENTRY)
        program.info["host_entry"] = HOST_ENTRY

    def cancel(self) -> None:
        self.batch.cancel()


class _Formatted:
    """A function already formatted: stands in for it when its module is formatted."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def _canonical(text: str, name: str, params: list[str]) -> str:
    """``text`` of function ``name`` with its name and its parameters' value names replaced by positions.

    Equal canonical texts are the same function up to a renaming, so one compiled copy serves both. The
    stand-ins hold a NUL, which no name in emitted IR has, so no two names can merge; a name this misses
    (one LLVM had to quote differently) only costs a duplicate compile.
    """
    text = text.replace(f'@"{name}"', '@"\0"', 1)
    for index, param in enumerate(params):
        text = text.replace(f'%"{param}"', f'%"\0{index}"')
    return text
