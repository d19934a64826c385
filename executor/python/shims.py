# shims: picture capture as in bee-code-interpreter: matplotlib.pyplot.show()
# saves the open figures as WORKSPACE/plot.png, plot-2.png, ... and PIL's
# Image.show() saves WORKSPACE/image.png, image-2.png, ...; patched lazily on import.
import os
import sys

_workspace = "/workspace"
_counters = {"plot": 0, "image": 0}
_PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")


def _next_path(stem):
    _counters[stem] += 1
    n = _counters[stem]
    name = stem + ".png" if n == 1 else "%s-%d.png" % (stem, n)
    return os.path.join(_workspace, name)


def _patch_pyplot(plt):
    if getattr(plt.show, "_code_interpreter_shim", False):
        return

    def show(*args, **kwargs):
        """Saves every open figure to the workspace (plot.png, plot-2.png, ...)
        and closes them."""
        for num in plt.get_fignums():
            plt.figure(num).savefig(_next_path("plot"), format="png")
        plt.close("all")

    show._code_interpreter_shim = True
    plt.show = show


def _patch_pil(image_module):
    cls = image_module.Image
    if getattr(cls.show, "_code_interpreter_shim", False):
        return

    def show(self, title=None, **kwargs):
        """Saves the image to the workspace (image.png, image-2.png, ...)."""
        path = _next_path("image")
        img = self if self.mode in _PNG_MODES else self.convert("RGBA")
        img.save(path, format="PNG")

    show._code_interpreter_shim = True
    cls.show = show


_TARGETS = {"matplotlib.pyplot": _patch_pyplot, "PIL.Image": _patch_pil}


def _apply(name, module):
    try:
        _TARGETS[name](module)
    except Exception:
        pass  # an unexpected library version keeps its own show()


class _PatchingLoader:
    """Wraps the real loader; patches the module right after it executed."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        self._loader.exec_module(module)
        _apply(self._name, module)

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


class _ShimFinder:
    def find_spec(self, fullname, path, target=None):
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec


def install(workspace):
    """Patches what is already imported and hooks the imports still to come."""
    global _workspace
    _workspace = workspace
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            _apply(name, module)
    sys.meta_path.insert(0, _ShimFinder())
