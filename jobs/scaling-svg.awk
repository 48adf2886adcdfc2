# Draws scaling.csv (jobs/scaling.sh) as an SVG: one row per model, images/s (left) and
# efficiency (right) against ranks on a log2 axis. Per mode/transport/threads series: measured
# points (filled; hollow when oversubscribed), the model's prediction for the same rows (dashed
# line, small squares), and the ideal (dotted: ranks x the one-rank measurement; efficiency 1).
#   awk -F, -f jobs/scaling-svg.awk scaling.csv > scaling.svg
BEGIN {
    FS = ","
    W = 440; H = 270; ML = 70; MR = 20; MT = 36; MB = 44; LEG = 24
    split("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf", pal, " ")
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
    m = $col["model"]
    if (!(m in mi)) { mi[m] = ++nm; mname[nm] = m }
    s = $col["mode"] " " $col["transport"] " " $col["threads"] "t"
    if (!((m, s) in si)) { si[m, s] = ++ns[m]; sname[m, ns[m]] = s }
    k = si[m, s]
    n = ++np[m, k]
    r = $col["ranks"] + 0
    X[m, k, n] = r; Y[m, k, n] = $col["images_s"] + 0; E[m, k, n] = $col["efficiency"] + 0
    P[m, k, n] = $col["predicted_images_s"] + 0; PE[m, k, n] = $col["predicted_efficiency"] + 0
    O[m, k, n] = $col["oversubscribed"] == "yes"
    if (r == 1) one[m, k] = $col["images_s"] + 0
    if (r > rmax) rmax = r
    top = $col["images_s"] + 0; if ($col["predicted_images_s"] + 0 > top) top = $col["predicted_images_s"] + 0
    if (top > ymax[m]) ymax[m] = top
}
function lx(r) { return ML + (W - ML - MR) * (rmax > 1 ? log(r) / log(rmax) : 0.5) }
function ly(v, vmax) { return MT + (H - MT - MB) * (1 - v / vmax) }
function axes(x0, y0, vmax, title, ylabel, fmt,   i, v, r) {
    printf "<g transform=\"translate(%d,%d)\">\n", x0, y0
    printf "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", ML, title
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, H - MB, W - MR, H - MB
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, MT, ML, H - MB
    for (i = 0; i <= 4; i++) {
        v = vmax * i / 4
        printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", ML, ly(v, vmax), W - MR, ly(v, vmax)
        printf "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">" fmt "</text>\n", ML - 4, ly(v, vmax) + 4, v
    }
    for (r = 1; r <= rmax; r *= 2)
        printf "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n", lx(r), H - MB + 16, r
    printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">ranks</text>\n", (ML + W - MR) / 2, H - MB + 34
    printf "<text x=\"14\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s</text>\n", (MT + H - MB) / 2, (MT + H - MB) / 2, ylabel
}
# one series: measured points, model line, ideal line (which = "img" or "eff")
function series(m, k, vmax, which,   n, i, c, pts, mpts, ipts, v, pv, iv) {
    c = pal[(k - 1) % 8 + 1]; pts = mpts = ipts = ""
    for (i = 1; i <= np[m, k]; i++) {
        v = which == "img" ? Y[m, k, i] : E[m, k, i]
        pv = which == "img" ? P[m, k, i] : PE[m, k, i]
        iv = which == "img" ? ((m, k) in one ? one[m, k] * X[m, k, i] : 0) : 1
        mpts = mpts sprintf("%.1f,%.1f ", lx(X[m, k, i]), ly(pv, vmax))
        ipts = ipts sprintf("%.1f,%.1f ", lx(X[m, k, i]), ly(iv, vmax))
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" stroke=\"%s\" stroke-width=\"1.5\" fill=\"%s\"/>\n", lx(X[m, k, i]), ly(v, vmax), c, O[m, k, i] ? "white" : c
        printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"5\" height=\"5\" fill=\"%s\" opacity=\"0.6\"/>\n", lx(X[m, k, i]) - 2.5, ly(pv, vmax) - 2.5, c
    }
    printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-dasharray=\"6,3\"/>\n", mpts, c
    printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-dasharray=\"1,3\" opacity=\"0.7\"/>\n", ipts, c
}
END {
    if (nm == 0) { print "scaling-svg.awk: no rows" > "/dev/stderr"; exit 1 }
    maxs = 0
    for (j = 1; j <= nm; j++) {
        m = mname[j]
        if (ns[m] > maxs) maxs = ns[m]
        for (k = 1; k <= ns[m]; k++)   # the ideal lines fit too
            for (i = 1; i <= np[m, k]; i++)
                if ((m, k) in one && one[m, k] * X[m, k, i] > ymax[m]) ymax[m] = one[m, k] * X[m, k, i]
    }
    rowh = H + LEG * (maxs + 1)
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", 2 * W, nm * rowh + 30
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"%d\" font-size=\"11\">dots: measured (hollow: oversubscribed), dashed with squares: model, dotted: ideal</text>\n", nm * rowh + 20
    for (j = 1; j <= nm; j++) {
        m = mname[j]; y0 = (j - 1) * rowh; vmax = ymax[m] * 1.1
        axes(0, y0, vmax, m ": images/s", "images/s", "%.0f")
        for (k = 1; k <= ns[m]; k++) series(m, k, vmax, "img")
        for (k = 1; k <= ns[m]; k++)
            printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"%s\">&#9679; %s</text>\n", ML, H + LEG * k - 8, pal[(k - 1) % 8 + 1], sname[m, k]
        print "</g>"
        axes(W, y0, 1.2, m ": efficiency", "efficiency", "%.2f")
        for (k = 1; k <= ns[m]; k++) series(m, k, 1.2, "eff")
        print "</g>"
    }
    print "</svg>"
}
