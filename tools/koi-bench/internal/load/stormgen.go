package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// generator is a storm generator process (koi-bench storm-gen).
type generator struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startGenerator starts argv, lowers its priority and waits until it has
// primed its users.
func startGenerator(ctx context.Context, argv []string) (*generator, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("storm generator: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("storm generator: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("storm generator: %w", err)
	}
	g := &generator{cmd: cmd, in: in, out: bufio.NewReader(out)}
	// Behind the measuring process on a shared CPU: where the platform
	// has no priorities the figures say so through the other-load note.
	lowerPriority(cmd.Process.Pid)
	line, err := g.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		g.stop()
		return nil, fmt.Errorf("storm generator did not get ready (%q): %w", strings.TrimSpace(line), errors.Join(err, errors.New("see its output above")))
	}
	return g, nil
}

// storm tells the generator to go and reads the outcome.
func (g *generator) storm(context.Context) (stormOutcome, error) {
	var o stormOutcome
	if _, err := io.WriteString(g.in, "go\n"); err != nil {
		return o, fmt.Errorf("storm generator: %w", err)
	}
	line, err := g.out.ReadString('\n')
	if err != nil {
		return o, fmt.Errorf("storm generator: reading its outcome: %w", err)
	}
	if err := json.Unmarshal([]byte(line), &o); err != nil {
		return o, fmt.Errorf("storm generator: its outcome %q: %w", line, err)
	}
	return o, nil
}

func (g *generator) stop() {
	g.in.Close()
	if err := g.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "koi-bench: storm generator:", err)
	}
}
