// Configuration: the file text (key = value lines) and the command line (one argument per
// line).  Bad input must end as a ConfigError naming the key, never as another exception
// or a crash; main() only catches ConfigError.
#include "config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string text(reinterpret_cast<const char *>(data), size);
	livenotify::Config cfg;
	try
	{
		livenotify::apply_config_text(cfg, text, "fuzz.conf");
	}
	catch (const livenotify::ConfigError &)
	{
	}
	std::vector<std::string> args = {"livenotifyd"};
	size_t pos = 0;
	while (pos <= text.size() && args.size() < 64)
	{
		size_t nl = text.find('\n', pos);
		if (nl == std::string::npos)
			nl = text.size();
		args.push_back(text.substr(pos, nl - pos));
		pos = nl + 1;
	}
	std::vector<const char *> argv;
	for (auto &a : args)
		argv.push_back(a.c_str());
	argv.push_back(nullptr);
	try
	{
		livenotify::CommandLine cmd =
			livenotify::parse_command_line(static_cast<int>(args.size()), argv.data());
		livenotify::Config c2;
		for (auto &kv : cmd.settings)
			livenotify::apply_setting(c2, kv.first, kv.second);
	}
	catch (const livenotify::ConfigError &)
	{
	}
	return 0;
}
