"""Turn a failed PyTorch export into one plain-text message: the real cause first, next steps after.

``torch.onnx.export(dynamo=True)`` raises a generic "Failed to convert the exported program to an
ONNX model. This is step 3/3 ... Next steps:" with terminal colour codes, and the real cause
("No ONNX function found for <OpOverload(op='aten.cummax', ...)>") sits only in the chained
exceptions. :func:`torch_export_error` walks the chain, strips ANSI escapes and puts the cause
first.

Example:
    >>> inner = RuntimeError("No ONNX function found for <OpOverload(op='aten.cummax', overload='default')>. "
    ...                      "Failure message: No decompositions registered")
    >>> outer = RuntimeError("Failed to convert. \\x1b[96mThis is step 3/3\\x1b[0m. Next steps:")
    >>> outer.__cause__ = inner
    >>> msg = str(torch_export_error(outer, "torch.onnx.export"))
    >>> msg.startswith("torch.onnx.export failed: PyTorch op aten.cummax has no ONNX equivalent")
    True
    >>> "\\x1b" not in msg and "Next steps: replace aten.cummax" in msg
    True
"""
from __future__ import annotations

import re
from typing import List

from edgeship.errors import ConversionError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NO_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)'(?:, overload='(\w+)')?\)>")
_NODE = re.compile(r"Error when translating node (%\S+)")


def plain(text: str) -> str:
    """``text`` without terminal colour/control sequences."""
    return _ANSI.sub("", text)


def _chain(exc: BaseException) -> List[BaseException]:
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _first_line(text: str, limit: int = 400) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line[:limit] + ("..." if len(line) > limit else "")


def torch_export_error(exc: BaseException, what: str) -> ConversionError:
    """A :class:`ConversionError` for a failed PyTorch export: cause first, plain text, next steps after."""
    chain = _chain(exc)
    texts = [plain(str(e)) for e in chain]
    whole = "\n".join(texts)
    node = _NODE.search(whole)
    where = f" (graph node {node.group(1)})" if node else ""
    missing = _NO_FUNCTION.search(whole)
    if missing:
        op = missing.group(1)
        return ConversionError(
            f"{what} failed: PyTorch op {op} has no ONNX equivalent in torch's exporter "
            f"(No ONNX function found for {op}){where}. Next steps: replace {op} in the module with ops that "
            f"export (e.g. torch.topk, torch.sort, elementwise ops), or move that step out of the model into "
            f"pre/post-processing; then convert again")
    # no known pattern: the innermost exception is the cause; torch's own advice goes after it
    cause = next((_first_line(t) for t in reversed(texts) if _first_line(t)), type(exc).__name__)
    kind = type(chain[-1]).__name__
    steps = [ln.strip("- ").strip() for t in texts for ln in t.splitlines() if ln.strip().startswith("- ")]
    advice = f" Next steps (from torch): {'; '.join(dict.fromkeys(steps))}" if steps else ""
    return ConversionError(f"{what} failed: {kind}: {cause}{where}.{advice}")


__all__ = ["torch_export_error", "plain"]
