#include "cesr/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cesr {

namespace {

std::string size_text(std::size_t n) {
  if (n >= (std::size_t{1} << 20) && n % (std::size_t{1} << 20) == 0) return fmt::format("{} MiB", n >> 20);
  if (n >= 1024 && n % 1024 == 0) return fmt::format("{} KiB", n >> 10);
  return fmt::format("{} bytes", n);
}

std::string_view kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string read_binary_file(const std::string& path, std::string_view what, std::size_t max_bytes) {
  const auto refuse = [&](const std::string& problem) {
    return std::invalid_argument(fmt::format("{} ({})", problem, what));
  };
  const auto cannot_read = [&](int err) {
    return refuse(fmt::format("cannot read file '{}': {}", path,
                              err == ELOOP ? "a loop of symbolic links" : std::strerror(err)));
  };
  const auto check = [&](const struct stat& st) {
    if (S_ISDIR(st.st_mode)) throw refuse(fmt::format("'{}' is a folder, not a file", path));
    if (!S_ISREG(st.st_mode))
      throw refuse(fmt::format("'{}' is {}, not a regular file", path,
                               kind_of(st.st_mode)));
    if (static_cast<std::uintmax_t>(st.st_size) > max_bytes)
      throw refuse(fmt::format("'{}' has {} bytes, more than the limit of {}", path, st.st_size, size_text(max_bytes)));
  };
  // Checked before opening, so that a device is never opened (for some,
  // opening has effects) and a FIFO never waits for a writer; checked again on
  // the open file, in case the path changed in between (O_NONBLOCK: opening a
  // FIFO that replaced the file returns at once).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw cannot_read(errno);
  check(st);
  const FileDescriptor in{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)};
  if (in.fd < 0) throw cannot_read(errno);
  if (::fstat(in.fd, &st) != 0) throw IoError(fmt::format("cannot read file '{}': {} ({})", path, std::strerror(errno), what));
  check(st);
  std::string text;
  text.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[1 << 16];
  // Bounded: every pass reads at least one byte, and a file that grows past
  // the limit while being read (or /proc files, whose size reads as 0) stops
  // at max_bytes + 1 bytes.
  for (;;) {
    const ssize_t n = ::read(in.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(fmt::format("error while reading '{}': {} ({})", path, std::strerror(errno), what));
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes)
      throw refuse(fmt::format("'{}' has more than the limit of {}", path, size_text(max_bytes)));
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

std::string read_text_file(const std::string& path, std::string_view what, std::size_t max_bytes) {
  const auto refuse = [&](const std::string& problem) {
    return std::invalid_argument(fmt::format("{} ({})", problem, what));
  };
  std::string text = read_binary_file(path, what, max_bytes);
  // A UTF-8 byte-order mark (written by some Windows editors and by Excel's
  // "CSV UTF-8") is not part of the content: files read as on the command line.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  // Named as such rather than echoed into a one-line message.
  // A control byte other than tab, line feed, vertical tab, form feed and
  // carriage return (NUL, ESC, DEL, ...) does not occur in text.
  const auto binary = std::find_if(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && !(u >= 0x09 && u <= 0x0D)) || u == 0x7F;
  });
  if (binary != text.end())
    throw refuse(fmt::format("'{}' is a binary file, not text: byte {} is 0x{:02X}", path, binary - text.begin() + 1,
                             static_cast<unsigned char>(*binary)));
  return text;
}

namespace {
std::string_view trim_blanks(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}
}  // namespace

void for_each_csv_row(std::string_view text,
                      const std::function<void(const std::vector<std::string_view>& fields, std::size_t line)>& row) {
  std::vector<std::string_view> fields;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = trim_blanks(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    fields.clear();
    for (;;) {  // each pass takes one field
      const auto comma = line.find(',');
      fields.push_back(trim_blanks(line.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
    row(fields, line_no);
  }
}

}  // namespace cesr
