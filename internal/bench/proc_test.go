package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseProc(t *testing.T) {
	t.Parallel()
	stat := []byte("4242 (parley (x) serve) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", cpu, err)
	}
	rss, err := parseStatusRSS([]byte("Name:\tparley\nVmPeak:\t 9999 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n"))
	if err != nil || rss != 20480 {
		t.Errorf("parseStatusRSS = %v, %v; want 20480", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tx\n")); err == nil {
		t.Errorf("parseStatusRSS without VmRSS: no error")
	}
}

func TestReadProcSelf(t *testing.T) {
	t.Parallel()
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rssKiB <= 0 {
		t.Errorf("own RSS = %d KiB", s.rssKiB)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Errorf("readProc of a process that does not exist: no error")
	}
}
