// go-mint: a lean load client for Anchorage's admin API (bench/api-mint.ts),
// and for SPIRE's server API when the bench compares the two.
//
// It sends pre-encoded request messages (MintX509SVIDRequest of either API),
// read from a file, to one unary method as raw bytes, and keeps the answers as
// raw bytes too (a pass-through codec, so no generated code), with
// a fixed number of calls in flight for a fixed time, and prints one JSON line:
// completed calls, failures by gRPC code, latency percentiles, and the CPU used
// in the measured window by itself, by the processes named with -pid, and by
// the whole machine.
//
// The requests file holds the messages one after another, each preceded by its
// length as a 4-byte big-endian integer.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rawCodec passes messages through as they are: requests are already encoded,
// and answers are kept as bytes. Named "proto" so the content type is the one
// a generated client sends (application/grpc+proto).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	// The transport may reuse data's buffer once Unmarshal returns.
	*b = append((*b)[:0], data...)
	return nil
}

// pidList collects -pid name=pid flags.
type pidList []namedPid

type namedPid struct {
	name string
	pid  int
}

func (p *pidList) String() string { return fmt.Sprint(*p) }

func (p *pidList) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	pid, err := strconv.Atoi(v)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want name=pid, got %q", s)
	}
	*p = append(*p, namedPid{name, pid})
	return nil
}

type result struct {
	Method           string             `json:"method"`
	Concurrency      int                `json:"concurrency"`
	Requests         int                `json:"distinct_requests"`
	DurationMs       float64            `json:"duration_ms"`
	OK               int64              `json:"ok"`
	Failures         map[string]int64   `json:"failures"`
	FirstFailure     string             `json:"first_failure,omitempty"`
	RatePerS         float64            `json:"rate_per_s"`
	P50Ms            float64            `json:"p50_ms"`
	P90Ms            float64            `json:"p90_ms"`
	P99Ms            float64            `json:"p99_ms"`
	MaxMs            float64            `json:"max_ms"`
	ClientCPUCores   float64            `json:"client_cpu_cores"`
	PidCPUCores      map[string]float64 `json:"pid_cpu_cores"`
	MachineBusyCores float64            `json:"machine_busy_cores"`
}

func main() {
	socket := flag.String("socket", "", "the server's admin socket (a Unix socket path)")
	method := flag.String("method", "", `full method name, e.g. "/anchorage.admin.v1.Admin/MintX509SVID"`)
	requestsFile := flag.String("requests", "", "file of length-prefixed encoded request messages")
	concurrency := flag.Int("c", 32, "calls kept in flight")
	duration := flag.Duration("duration", 5*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "time of calls made before measuring, not counted")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline of each call")
	sampleOut := flag.String("sample-out", "", "if set, the answer to the first request of the file is written here")
	var pids pidList
	flag.Var(&pids, "pid", "name=pid of a process whose CPU use in the measured window is reported (repeatable)")
	flag.Parse()
	if err := run(*socket, *method, *requestsFile, *concurrency, *duration, *warmup, *timeout, *sampleOut, pids); err != nil {
		fmt.Fprintf(os.Stderr, "go-mint: %v\n", err)
		os.Exit(1)
	}
}

func readRequests(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out [][]byte
	var n [4]byte
	for {
		if _, err := io.ReadFull(r, n[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: truncated length prefix after %d messages", path, len(out))
		}
		size := binary.BigEndian.Uint32(n[:])
		if size == 0 || size > 1<<20 {
			return nil, fmt.Errorf("%s: message %d has an implausible length %d", path, len(out), size)
		}
		m := make([]byte, size)
		if _, err := io.ReadFull(r, m); err != nil {
			return nil, fmt.Errorf("%s: message %d is truncated", path, len(out))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	return out, nil
}

// stats of one worker; merged at the end, so that workers share nothing but the request counter.
type workerStats struct {
	lat      []time.Duration
	failures map[string]int64
	first    string
}

func run(socket, method, requestsFile string, c int, duration, warmup, timeout time.Duration, sampleOut string, pids pidList) error {
	if socket == "" || method == "" || requestsFile == "" {
		return errors.New("-socket, -method and -requests are required")
	}
	if !strings.HasPrefix(method, "/") || strings.Count(method, "/") != 2 {
		return fmt.Errorf("-method %q is not of the form /package.Service/Method", method)
	}
	if c < 1 || duration <= 0 || warmup < 0 || timeout <= 0 {
		return errors.New("-c must be at least 1, -duration and -timeout positive, -warmup not negative")
	}
	if st, err := os.Stat(socket); err != nil || st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("no Unix socket at %s", socket)
	}
	reqs, err := readRequests(requestsFile)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()

	// One call first: the connection is up, and the server answers this method at all.
	var sample []byte
	{
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := conn.Invoke(ctx, method, &reqs[0], &sample)
		cancel()
		if err != nil {
			return fmt.Errorf("first call: %v", err)
		}
		if len(sample) == 0 {
			return errors.New("first call: empty answer")
		}
		if sampleOut != "" {
			if err := os.WriteFile(sampleOut, sample, 0o600); err != nil {
				return err
			}
		}
	}

	var next atomic.Uint64
	phase := func(d time.Duration, record bool) []workerStats {
		stats := make([]workerStats, c)
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := 0; w < c; w++ {
			wg.Add(1)
			go func(s *workerStats) {
				defer wg.Done()
				s.failures = map[string]int64{}
				if record {
					s.lat = make([]time.Duration, 0, 1024)
				}
				var resp []byte
				// Each worker makes one call at least, however late it starts.
				for first := true; first || time.Now().Before(end); first = false {
					req := &reqs[next.Add(1)%uint64(len(reqs))]
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					t0 := time.Now()
					err := conn.Invoke(ctx, method, req, &resp)
					el := time.Since(t0)
					cancel()
					if !record {
						continue
					}
					switch {
					case err != nil:
						st := status.Convert(err)
						s.failures[st.Code().String()]++
						if s.first == "" {
							s.first = st.Code().String() + ": " + st.Message()
						}
					case len(resp) == 0:
						s.failures["EMPTY_BODY"]++
						if s.first == "" {
							s.first = "status OK with an empty answer"
						}
					default:
						s.lat = append(s.lat, el)
					}
				}
			}(&stats[w])
		}
		wg.Wait()
		return stats
	}

	if warmup > 0 {
		phase(warmup, false)
	}
	cpu0 := selfCPU()
	busy0, _ := machineBusy()
	pid0 := map[string]float64{}
	for _, p := range pids {
		pid0[p.name] = pidCPU(p.pid)
	}
	t0 := time.Now()
	stats := phase(duration, true)
	elapsed := time.Since(t0)
	secs := elapsed.Seconds()

	res := result{
		Method: method, Concurrency: c, Requests: len(reqs), DurationMs: float64(elapsed.Microseconds()) / 1000,
		Failures: map[string]int64{}, PidCPUCores: map[string]float64{},
	}
	var lat []time.Duration
	for _, s := range stats {
		lat = append(lat, s.lat...)
		for k, v := range s.failures {
			res.Failures[k] += v
		}
		if res.FirstFailure == "" {
			res.FirstFailure = s.first
		}
	}
	res.ClientCPUCores = (selfCPU() - cpu0) / secs
	if busy1, ok := machineBusy(); ok {
		res.MachineBusyCores = (busy1 - busy0) / secs
	}
	for _, p := range pids {
		res.PidCPUCores[p.name] = (pidCPU(p.pid) - pid0[p.name]) / secs
	}
	res.OK = int64(len(lat))
	res.RatePerS = float64(res.OK) / secs
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(p float64) float64 {
			// Nearest rank, as bench/stats.ts computes it.
			i := int(float64(len(lat))*p/100+0.999999999) - 1
			if i < 0 {
				i = 0
			}
			if i >= len(lat) {
				i = len(lat) - 1
			}
			return float64(lat[i].Microseconds()) / 1000
		}
		res.P50Ms, res.P90Ms, res.P99Ms = pct(50), pct(90), pct(99)
		res.MaxMs = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// selfCPU is this process's user+system CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// clockTicks is USER_HZ, in which /proc reports CPU times: 100 on every Linux this runs on.
const clockTicks = 100

// pidCPU is a process's user+system CPU time (all its threads), in seconds; 0 if unreadable.
func pidCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / clockTicks
}

// machineBusy is the CPU time all cores spent on anything but idle and iowait, in seconds.
func machineBusy() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, false
	}
	var busy float64
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		// user nice system idle iowait irq softirq steal (guest times are already in user).
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += x
	}
	return busy / clockTicks, true
}
