# RSS and PSS of the two nginx workers during the soak runs (make soak).
#   gnuplot -e "a='samples-soak-a.tsv'; b='samples-soak-b.tsv'; out='rss.png'" rss.gp
#
# Sample files (soak_client --samples): t_s published delivered, then per
# worker rss_kb pss_kb anon_kb shmem_kb (worker 1 in columns 4-7, worker 2
# in 8-11), and a comment "# t_10pct T": when 10% of the deliveries were in.
set terminal pngcairo size 1000,420 font ",10"
set output out
set multiplot layout 1,2
set xlabel "seconds since the first publish"
set ylabel "MB"
set yrange [0:*]
set key bottom right
set grid

# the 10% point, from which on RSS must stay flat
t10(f) = real(system("awk '$2 == \"t_10pct\" { print $3 }' " . f))
mark(f) = sprintf("set arrow 1 from %g, graph 0 to %g, graph 1 nohead dt 3 lc rgb 'gray40'", t10(f), t10(f))

do for [run in "a b"] {
    f = value(run)
    eval mark(f)
    set title (run eq "a" ? "Run A: 1 subscriber x 1,000,000 events" \
                          : "Run B: 1000 subscribers x 10,000 events (dotted: 10% point)")
    plot f using 1:($4/1024) with linespoints pt 7 ps 0.4 title "worker 1 RSS", \
         f using 1:($8/1024) with linespoints pt 7 ps 0.4 title "worker 2 RSS", \
         f using 1:($5/1024) with lines dt 2 title "worker 1 PSS", \
         f using 1:($9/1024) with lines dt 2 title "worker 2 PSS"
}
unset multiplot
