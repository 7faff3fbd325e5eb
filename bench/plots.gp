# Plots of a benchmark run, from the data files bench/bench.py writes:
#   gnuplot -e "datadir='DIR'; outdir='DIR'; plots='fanout publish memory latency';
#               latency='module nchan floor'; paced='module nchan floor'" bench/plots.gp
# `plots` names the plots that have data; a value "-" in a data file is a
# measurement that is missing (a server not in that workload).

set terminal pngcairo size 760,420 font "sans,10"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key below
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0   # room above the highest bar

if (strstrt(plots, "fanout")) {
    set output outdir."/fanout.png"
    set title "Deliveries per server CPU-second (thousands; higher is better)"
    plot datadir."/fanout.dat" using 2:xtic(1) title "broadcast", \
         ''                    using 3 title "many channels"
}

if (strstrt(plots, "publish")) {
    set output outdir."/publish.png"
    set title "Publishes per second (thousands; higher is better)"
    plot datadir."/publish.dat" using 2:xtic(1) title "no subscribers", \
         ''                     using 3 title "10 subscribers per channel"
}

if (strstrt(plots, "memory")) {
    set output outdir."/memory.png"
    set title "Server memory (PSS) per subscriber, bytes (lower is better)"
    plot datadir."/memory.dat" using 2:xtic(1) title "idle subscribers", \
         ''                    using 3 title "concurrent-subscribers workload"
}

if (strstrt(plots, "latency")) {
    set terminal pngcairo size 960,420 font "sans,10"
    set output outdir."/latency.png"
    set multiplot layout 1, 2 title "Broadcast: publish-to-receive latency, cumulative"
    set style data lines
    set logscale x
    set offsets 0, 0, 0, 0
    set xlabel "milliseconds"
    set ylabel "fraction of deliveries"
    set yrange [0:1]
    set key inside top left vertical
    set title "back to back"
    plot for [s in latency] datadir."/latency-".s.".dat" using 1:2 with lines lw 2 title s
    set title "paced"
    plot for [s in paced] datadir."/paced-".s.".dat" using 1:2 with lines lw 2 title s
    unset multiplot
}
