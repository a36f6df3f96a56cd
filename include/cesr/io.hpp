// Files in and out: the I/O failure type (exit 5 in the command line) and one
// bounded reader for every input file.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// An input or output operation that failed on a valid request: disk full, a
/// file-size limit, a read error, standard output closed. The command line
/// maps it to exit 5; bad input stays std::invalid_argument (exit 2).
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Input files larger than this are refused (a spectrum of 10^7 values is
/// about 250 MB of text at 17 digits).
inline constexpr std::size_t default_max_input_bytes = std::size_t{256} << 20;

/// The whole content of the text file `path`, read with at most `max_bytes`
/// bytes. `what` names the quantity the file holds ("spectrum file",
/// "loss curve", ...) and ends every message in parentheses, so that a caller
/// can prefix its flag. Throws std::invalid_argument, naming the path, for a
/// missing or unreadable file, a folder, a symlink loop, anything that is not
/// a regular file (a FIFO, /dev/zero or another device is refused without
/// being read, so reading never blocks nor runs forever), a file larger than
/// `max_bytes` (the message names the limit) and a binary file (a NUL byte;
/// its content is not echoed). A leading UTF-8 byte-order mark is dropped.
/// Throws IoError when reading fails midway.
std::string read_text_file(const std::string& path, std::string_view what,
                           std::size_t max_bytes = default_max_input_bytes);

/// The same checks and bound for a binary file (a .npy array): the bytes as
/// read, NUL bytes included.
std::string read_binary_file(const std::string& path, std::string_view what,
                             std::size_t max_bytes = default_max_input_bytes);

/// The rows of a CSV text, for the readers of cesr's CSV inputs (check's
/// curves, problem's data): each line that is not blank and does not start
/// with '#' (after trimming spaces, tabs and CR), split at every comma into
/// fields trimmed alike; calls row(fields, line number) in order. Bounded:
/// each pass consumes one line. Quoting is the caller's (no field of these
/// files may hold a comma).
void for_each_csv_row(std::string_view text,
                      const std::function<void(const std::vector<std::string_view>& fields, std::size_t line)>& row);

}  // namespace cesr
