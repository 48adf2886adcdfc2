#!/bin/sh
# `mpq bench` --quant names on the smallest step (ResNet-20, batch 2, one timed step): float and
# none both mean no quantizer (the JSON says "float"), a quantizer's name is taken and reported,
# and an unknown one is an error naming the configuration key, with a nonzero exit.
set -eu
mpq="${top_builddir:?set by make check}/mpq"
bench() { "$mpq" bench --model resnet20 --batch 2 --steps 1 --threads 1 --json "$@"; }
fail=0
for q in float none parametric_fp_d_xmax; do
    want=$q
    [ "$q" = none ] && want=float
    if ! out=$(bench --quant "$q" 2>&1); then
        echo "FAIL --quant $q: nonzero exit: $out"
        fail=1
        continue
    fi
    case $out in
    *"\"quant\": \"$want\""*) ;;
    *) echo "FAIL --quant $q: expected \"quant\": \"$want\" in: $out"; fail=1 ;;
    esac
done
if err=$(bench --quant no_such_method 2>&1); then
    echo "FAIL --quant no_such_method was accepted: $err"
    fail=1
else
    case $err in
    *w_quantize*no_such_method*) ;;
    *) echo "FAIL --quant no_such_method: the error does not name the key and value: $err"; fail=1 ;;
    esac
fi
[ "$fail" -eq 0 ] && echo "PASS mpq bench --quant: float, none, a quantizer, an unknown name"
exit "$fail"
